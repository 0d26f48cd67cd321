"""The calibration head: fits that minimise the NLL, clear refusals, exact reloads from its own subfolder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar

from modeling.calibration.head import CalibrationError, CalibrationHead


def overconfident(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits three times too large with an offset: both temperature and Platt scaling have work to do."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    z = 3.0 * ((2 * y - 1) * 1.0 + rng.normal(0, 1.5, n)) + 0.8
    return z, y


def nll(z: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0, z) - y * z))


def test_platt_matches_an_independent_minimiser():
    z, y = overconfident()
    head = CalibrationHead("platt").fit(z, y)
    best = minimize(
        lambda ab: nll(ab[0] * z + ab[1], y),
        x0=[1.0, 0.0],
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12},
    )
    assert float(head.weight) == pytest.approx(best.x[0], abs=1e-4)
    assert float(head.bias) == pytest.approx(best.x[1], abs=1e-4)
    assert float(head.weight) < 0.5  # the logits were too large: the slope shrinks them
    assert head.fit_info["nll_after"] < head.fit_info["nll_before"]


def test_temperature_matches_an_independent_minimiser_and_keeps_the_bias_at_zero():
    z, y = overconfident(seed=1)
    head = CalibrationHead("temperature").fit(z, y)
    best = minimize_scalar(lambda t: nll(z / t, y), bounds=(0.05, 50), method="bounded", options={"xatol": 1e-10})
    assert head.temperature == pytest.approx(best.x, rel=1e-4)
    assert float(head.bias) == 0.0
    p = head.calibrate(z)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-z / head.temperature)), atol=1e-12)
    # ranking is untouched
    assert np.array_equal(np.argsort(p, kind="stable"), np.argsort(z, kind="stable"))


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        ([0.1, 0.2, 0.3], [1, 1, 1], "only fake images"),
        ([0.1, 0.2, 0.3], [0, 0, 0], "only real images"),
        ([0.1, float("nan"), 0.3], [0, 1, 0], "1 of 3 scores are NaN or infinite"),
        ([0.1, float("inf")], [0, 1], "NaN or infinite"),
        ([], [], "no calibration data"),
        ([0.1, 0.2], [0, 1, 1], "same length"),
        ([0.1, 0.2], [0, 2], "0 \\(real\\) or 1 \\(fake\\)"),
    ],
)
def test_bad_calibration_data_is_refused(logits, labels, message):
    with pytest.raises(CalibrationError, match=message):
        CalibrationHead("platt").fit(logits, labels)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown calibration method 'isotonic'"):
        CalibrationHead("isotonic")


@pytest.mark.parametrize("method", ["temperature", "platt"])
def test_saved_in_its_own_subfolder_and_reloaded_exactly(tmp_path, method):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    model_config = '{"model_type": "llava"}\n'
    (checkpoint / "config.json").write_text(model_config)
    z, y = overconfident(seed=2)
    head = CalibrationHead(method).fit(z, y)
    folder = head.save_to_checkpoint(checkpoint)
    assert folder == checkpoint / "calibration"
    assert (folder / "model.safetensors").is_file()
    assert (checkpoint / "config.json").read_text() == model_config  # the model's config is left alone
    saved = json.loads((folder / "config.json").read_text())
    assert saved["method"] == method and saved["fit_info"]["n"] == len(y)
    loaded = CalibrationHead.from_checkpoint(checkpoint)
    assert loaded.method == method and loaded.fit_info == head.fit_info
    assert float(loaded.weight) == float(head.weight) and float(loaded.bias) == float(head.bias)
    assert np.array_equal(loaded.calibrate(z), head.calibrate(z))
    # a refit replaces the head as a whole, without leftovers
    CalibrationHead("platt").fit(-z, y).save_to_checkpoint(checkpoint)
    assert sorted(p.name for p in checkpoint.iterdir()) == ["calibration", "config.json"]
    assert float(CalibrationHead.from_checkpoint(checkpoint).weight) < 0


def test_a_checkpoint_without_a_head_gives_none(tmp_path):
    assert CalibrationHead.from_checkpoint(tmp_path) is None


def _head_folder(tmp_path, tensors: dict | None, config: str | None = '{"method": "platt", "fit_info": {}}'):
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "calibration"
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(config)
    if tensors is not None:
        save_file({k: torch.tensor(v, dtype=torch.float64) for k, v in tensors.items()}, folder / "model.safetensors")
    return folder


GOOD = {"weight": [0.5], "bias": [0.1]}


@pytest.mark.parametrize(
    ("tensors", "config", "message"),
    [
        ({"weight": [float("nan")], "bias": [0.1]}, None, "model.safetensors: weight is nan; a head holds finite"),
        ({"weight": [float("inf")], "bias": [0.1]}, None, "model.safetensors: weight is inf; a head holds finite"),
        ({"weight": [0.5], "bias": [float("-inf")]}, None, "model.safetensors: bias is -inf; a head holds finite"),
        ({"weight": [0.5, 1.0], "bias": [0.1]}, None, "model.safetensors: weight has shape (2,), expected (1,)"),
        ({"weight": [[0.5]], "bias": [0.1]}, None, "model.safetensors: weight has shape (1, 1), expected (1,)"),
        ({"weight": [0.5]}, None, "model.safetensors: bias is missing"),
        ({"other": [1.0]}, None, "model.safetensors: weight, bias are missing"),
        ({**GOOD, "extra": [1.0]}, None, "model.safetensors: unexpected tensors: extra"),
        (None, None, "model.safetensors is missing"),
        (GOOD, '{"method": "isotonic"}', "config.json: method must be one of temperature, platt, not 'isotonic'"),
        (GOOD, '{"fit_info": {}}', "config.json: method must be one of temperature, platt, not None"),
        (GOOD, '{"method": "platt", "fit_info": [1]}', "config.json: fit_info must be an object"),
        (GOOD, '{"method": "pla', "config.json: not valid JSON"),
        (GOOD, "[]", "config.json: method must be one of temperature, platt"),
        ({"weight": [-2.0], "bias": [0.0]}, '{"method": "temperature"}', "a temperature head needs a positive weight"),
    ],
)
def test_a_broken_head_is_refused_in_one_line_naming_its_file(tmp_path, tensors, config, message):
    folder = _head_folder(tmp_path, tensors, **({} if config is None else {"config": config}))
    with pytest.raises(CalibrationError) as info:
        CalibrationHead.from_checkpoint(tmp_path)
    text = str(info.value)
    assert text.startswith(str(folder)) and message in text and "\n" not in text, text


def test_a_calibration_folder_without_its_config_is_refused(tmp_path):
    _head_folder(tmp_path, GOOD, config=None)
    with pytest.raises(CalibrationError, match=r"config\.json is missing"):
        CalibrationHead.from_checkpoint(tmp_path)


def test_a_valid_head_written_by_hand_loads(tmp_path):
    _head_folder(tmp_path, GOOD)
    head = CalibrationHead.from_checkpoint(tmp_path)
    assert (head.method, float(head.weight), float(head.bias)) == ("platt", 0.5, 0.1)
