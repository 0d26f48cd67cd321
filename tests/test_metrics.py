"""Detector metrics against scikit-learn and hand-worked examples; the plots as real PNG files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from modeling.evaluation import metrics
from modeling.evaluation.plots import reliability_diagram, roc_plot

SEEDS = range(6)
TOL = {"rtol": 1e-12, "atol": 1e-12}

# Worked example, n_bins=4 (edges 0, .25, .5, .75, 1), all values exact in binary.
# i  p_fake  y   conf    pred  correct
# 0  .875    1   .875    1     yes
# 1  .625    0   .625    1     no
# 2  .25     0   .75     0     yes   (on an edge: bins are (lower, upper], so it falls in (.5, .75])
# 3  .375    1   .625    0     no
# 4  .9375   1   .9375   1     yes
# 5  .125    1   .875    0     no
# 6  .6875   1   .6875   1     yes
# 7  .0625   0   .9375   0     yes
P_WORKED = [0.875, 0.625, 0.25, 0.375, 0.9375, 0.125, 0.6875, 0.0625]
Y_WORKED = [1, 0, 0, 1, 1, 1, 1, 0]
# Fixed bins: (.5, .75] = {1, 2, 3, 6}: conf (.625 + .75 + .625 + .6875) / 4 = 2.6875 / 4 = .671875, acc 2/4 = .5
#             (.75, 1]  = {0, 4, 5, 7}: conf (.875 + .9375 + .875 + .9375) / 4 = 3.625 / 4 = .90625, acc 3/4 = .75
# ECE = 4/8 * |.5 - .671875| + 4/8 * |.75 - .90625| = .5 * .171875 + .5 * .15625 = .0859375 + .078125 = .1640625
ECE_WORKED = 0.1640625
# Adaptive, 4 bins of 2 by sorted confidence (ties wrong-first):
#   {1, 3}: conf .625, acc 0 -> .625;  {6, 2}: conf (.6875 + .75) / 2 = .71875, acc 1 -> .28125
#   {5, 0}: conf .875, acc .5 -> .375; {4, 7}: conf .9375, acc 1 -> .0625
# ECE = (.625 + .28125 + .375 + .0625) / 4 = 1.34375 / 4 = .3359375
ECE_ADAPTIVE_WORKED = 0.3359375


def random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores on a 0.05 grid, so many ties, including exact 0, 0.5 and 1."""
    rng = np.random.default_rng(seed)
    n = 40 + 53 * seed
    y = rng.integers(0, 2, n)
    p = np.clip(rng.integers(0, 21, n) / 20 + 0.15 * (y - 0.5), 0.0, 1.0).round(2)
    return y, p


@pytest.mark.parametrize("seed", SEEDS)
def test_ranking_metrics_match_sklearn(seed):
    y, p = random_case(seed)
    assert len(np.unique(p)) < len(p) and {0.0, 1.0} <= set(p)
    np.testing.assert_allclose(metrics.roc_auc(y, p), skm.roc_auc_score(y, p), **TOL)
    np.testing.assert_allclose(metrics.average_precision(y, p), skm.average_precision_score(y, p), **TOL)
    ours, theirs = metrics.roc_curve(y, p), skm.roc_curve(y, p, drop_intermediate=False)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_pointwise_metrics_match_sklearn(seed):
    y, p = random_case(seed)
    np.testing.assert_allclose(metrics.brier_score(y, p), skm.brier_score_loss(y, p), **TOL)
    # Our clip is 1e-12; clipping before scikit-learn makes its own (finer) clip a no-op, so the two must agree.
    clipped = np.clip(p, 1e-12, 1 - 1e-12)
    np.testing.assert_allclose(metrics.negative_log_likelihood(y, p), skm.log_loss(y, clipped), **TOL)
    for t in (0.5, 0.3, 0.85):
        pred = (p >= t).astype(int)
        np.testing.assert_allclose(metrics.accuracy(y, p, t), skm.accuracy_score(y, pred), **TOL)
        np.testing.assert_allclose(metrics.f1(y, p, t), skm.f1_score(y, pred, zero_division=0), **TOL)


def test_f1_zero_division_and_threshold_at_half():
    assert metrics.f1([0, 0, 0], [0.1, 0.2, 0.3]) == 0.0 == skm.f1_score([0, 0, 0], [0, 0, 0], zero_division=0)
    assert metrics.accuracy([1, 0], [0.5, 0.4999]) == 1.0  # 0.5 itself is called fake
    bins = metrics.reliability_bins([1, 1], [0.5, 0.5], n_bins=4)  # ... in calibration too; conf .5 is in (.25, .5]
    np.testing.assert_array_equal([bins.lower, bins.upper, bins.accuracy], [[0.25], [0.5], [1.0]])


def test_nll_clips_confidently_wrong_scores():
    y, p = [1, 0, 1, 0], [0.0, 1.0, 1.0, 0.0]
    # Two samples at -log(1e-12) and two at -log(1 - 1e-12), averaged over four.
    expected = -(2 * np.log(1e-12) + 2 * np.log1p(-1e-12)) / 4
    np.testing.assert_allclose(metrics.negative_log_likelihood(y, p), expected, **TOL)
    np.testing.assert_allclose(metrics.negative_log_likelihood(y, p, eps=0.25), -np.log(0.25) / 2 - np.log(0.75) / 2)


def test_ece_worked_example():
    bins = metrics.reliability_bins(Y_WORKED, P_WORKED, n_bins=4)
    np.testing.assert_array_equal(bins.lower, [0.5, 0.75])
    np.testing.assert_array_equal(bins.upper, [0.75, 1.0])
    np.testing.assert_array_equal(bins.count, [4, 4])
    np.testing.assert_allclose(bins.confidence, [0.671875, 0.90625], **TOL)
    np.testing.assert_allclose(bins.accuracy, [0.5, 0.75], **TOL)
    np.testing.assert_allclose(metrics.expected_calibration_error(Y_WORKED, P_WORKED, n_bins=4), ECE_WORKED, **TOL)


def test_adaptive_ece_worked_example():
    bins = metrics.reliability_bins(Y_WORKED, P_WORKED, n_bins=4, adaptive=True)
    np.testing.assert_array_equal(bins.count, [2, 2, 2, 2])
    np.testing.assert_allclose(bins.lower, [0.625, 0.6875, 0.875, 0.9375], **TOL)
    np.testing.assert_allclose(bins.upper, [0.625, 0.75, 0.875, 0.9375], **TOL)
    ece = metrics.expected_calibration_error(Y_WORKED, P_WORKED, n_bins=4, adaptive=True)
    np.testing.assert_allclose(ece, ECE_ADAPTIVE_WORKED, **TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_ece_is_weighted_gap_of_bins_and_order_free(seed):
    y, p = random_case(seed)
    for adaptive in (False, True):
        bins = metrics.reliability_bins(y, p, n_bins=10, adaptive=adaptive)
        assert bins.count.sum() == len(y) and np.all(bins.count > 0)
        expected = np.sum(bins.count / len(y) * np.abs(bins.accuracy - bins.confidence))
        ece = metrics.expected_calibration_error(y, p, n_bins=10, adaptive=adaptive)
        np.testing.assert_allclose(ece, expected, **TOL)
        perm = np.random.default_rng(seed).permutation(len(y))
        np.testing.assert_allclose(
            metrics.expected_calibration_error(y[perm], p[perm], n_bins=10, adaptive=adaptive), ece, **TOL
        )
    sizes = metrics.reliability_bins(y, p, n_bins=7, adaptive=True).count
    assert sizes.max() - sizes.min() <= 1


def test_adaptive_with_fewer_samples_than_bins_keeps_only_filled_bins():
    bins = metrics.reliability_bins([1, 0, 1], [0.9, 0.2, 0.6], n_bins=15, adaptive=True)
    np.testing.assert_array_equal(bins.count, [1, 1, 1])


def test_binary_metrics_is_json_ready():
    y, p = random_case(2)
    result = metrics.binary_metrics(y, p)
    assert list(result) == [
        "n", "n_fake", "n_real", "accuracy", "f1", "auc", "ap", "brier", "nll", "ece", "ece_adaptive"
    ]  # fmt: skip
    assert json.loads(json.dumps(result)) == result
    assert all(type(result[k]) is int for k in ("n", "n_fake", "n_real"))
    assert all(type(v) is float for k, v in result.items() if k not in ("n", "n_fake", "n_real"))
    assert result["n_fake"] + result["n_real"] == result["n"] == len(y)
    np.testing.assert_allclose(result["auc"], skm.roc_auc_score(y, p), **TOL)


@pytest.mark.parametrize("label", [0, 1])
def test_binary_metrics_one_class(label):
    p = [0.1, 0.7, 0.4, 0.95]
    result = metrics.binary_metrics([label] * 4, p)
    assert result["auc"] is None and result["ap"] is None
    assert result["n"] == 4 and result["n_fake"] == 4 * label and result["n_real"] == 4 * (1 - label)
    np.testing.assert_allclose(result["brier"], skm.brier_score_loss([label] * 4, p, labels=[0, 1]), **TOL)
    np.testing.assert_allclose(result["accuracy"], np.mean((np.array(p) >= 0.5) == label), **TOL)
    assert json.loads(json.dumps(result)) == result
    with pytest.raises(ValueError, match="one class"):
        metrics.roc_auc([label] * 4, p)
    with pytest.raises(ValueError, match="one class"):
        metrics.average_precision([label] * 4, p)


def test_accepts_bool_and_float_labels():
    y, p = random_case(1)
    expected = metrics.binary_metrics(y, p)
    assert metrics.binary_metrics(y.astype(bool), p) == expected
    assert metrics.binary_metrics(y.astype(float).tolist(), p.tolist()) == expected


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1, 1], [0.2, 0.8], "differ in length"),
        ([], [], "empty"),
        ([0, 1], [0.2, float("nan")], "NaN"),
        ([0, 1], [0.2, 1.2], r"\[0, 1\]"),
        ([0, 1], [-0.1, 0.8], r"\[0, 1\]"),
        ([0, 2], [0.2, 0.8], "labels must be 0/1"),
        ([0, 0.5], [0.2, 0.8], "labels must be 0/1"),
        ([0, float("nan")], [0.2, 0.8], "labels must be 0/1"),
        (["fake", "real"], [0.2, 0.8], "labels must be 0/1"),
        ([0, 1], ["a", "b"], "numeric"),
        ([[0, 1]], [[0.2, 0.8]], "1-D"),
    ],
)
def test_validation_errors(y, p, match):
    with pytest.raises(ValueError, match=match):
        metrics.validate_inputs(y, p)
    with pytest.raises(ValueError, match=match):
        metrics.binary_metrics(y, p)


def test_parameter_errors():
    with pytest.raises(ValueError, match="n_bins"):
        metrics.expected_calibration_error([0, 1], [0.2, 0.8], n_bins=0)
    with pytest.raises(ValueError, match="threshold"):
        metrics.accuracy([0, 1], [0.2, 0.8], threshold=1.5)
    with pytest.raises(ValueError, match="eps"):
        metrics.negative_log_likelihood([0, 1], [0.2, 0.8], eps=0.7)


def test_imports_stay_light():
    code = (
        "import sys, modeling.evaluation.metrics, modeling.evaluation.plots; "
        "print(sorted(m for m in ('matplotlib', 'sklearn', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def assert_png(path, folder):
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0
        image.verify()
    assert [f.name for f in folder.iterdir()] == [path.name]  # no temp file left beside it


def test_reliability_diagram_writes_png(tmp_path):
    y, p = random_case(3)
    calibrated = np.clip(0.5 + 0.6 * (p - 0.5), 0.0, 1.0)
    out = reliability_diagram(y, {"raw": p, "calibrated": calibrated}, tmp_path / "reliability.png", n_bins=10)
    assert out == tmp_path / "reliability.png"
    assert_png(out, tmp_path)


def test_roc_plot_writes_png_and_replaces(tmp_path):
    y, p = random_case(4)
    target = tmp_path / "roc.png"
    target.write_bytes(b"old")
    out = roc_plot(y, {"raw": p, "flipped": 1 - p}, str(target), title="ROC")
    assert out == target
    assert_png(out, tmp_path)


@pytest.mark.parametrize("plot", [reliability_diagram, roc_plot])
def test_plots_reject_bad_input_without_writing(plot, tmp_path):
    y, p = random_case(0)
    with pytest.raises(ValueError, match=r"curve 'bad'.*differ in length"):
        plot(y, {"good": p, "bad": p[:-1]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="at least one"):
        plot(y, {}, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plot(y, {"raw": p + 2}, tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_roc_plot_rejects_one_class(tmp_path):
    with pytest.raises(ValueError, match="one class"):
        roc_plot([1, 1, 1], {"raw": [0.2, 0.6, 0.9]}, tmp_path / "roc.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seed", range(20))
def test_the_resampling_metrics_equal_sklearn_ties_included(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    p = rng.integers(0, 6, n) / 5 if seed % 2 else rng.random(n)  # coarse scores: many ties
    assert metrics.rank_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert metrics.rank_accuracy(y, p) == pytest.approx(skm.accuracy_score(y, (p >= 0.5).astype(int)), abs=1e-12)


def test_rank_auc_of_one_class_is_undefined_like_sklearn():
    with pytest.raises(ValueError, match="both classes"):
        metrics.rank_auc(np.ones(5, dtype=int), np.linspace(0, 1, 5))
