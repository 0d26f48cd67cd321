"""Intervals resample source groups: clustered data gets the wide interval it deserves, not an image-level one."""

import numpy as np
import pytest

from modeling.evaluation.intervals import grouped_bootstrap, image_bootstrap
from modeling.evaluation.metrics import accuracy, roc_auc


def clustered(groups: int = 6, per_group: int = 40, seed: int = 0):
    """A detector that is right on half the photographs and wrong on the other half: images of one photograph
    stand or fall together."""
    rng = np.random.default_rng(seed)
    y, scores, names = [], [], []
    for g in range(groups):
        labels = np.tile([0, 1], per_group // 2)
        good = g % 2 == 0
        s = np.where(labels == 1, 0.8, 0.2) if good else np.where(labels == 1, 0.3, 0.7)
        y += list(labels)
        scores += list(s + rng.normal(0, 0.05, per_group))
        names += [f"photo-{g}"] * per_group
    return np.array(y), np.clip(np.array(scores), 0, 1), names


def test_grouped_interval_is_wider_than_an_image_interval():
    y, s, groups = clustered()
    grouped = grouped_bootstrap(roc_auc, y, s, groups, resamples=500)
    images = image_bootstrap(roc_auc, y, s, resamples=500)
    assert grouped.value == images.value == pytest.approx(roc_auc(y, s))
    assert grouped.groups == 6 and images.groups == len(y)
    # half the photographs fail: resampling photographs swings the AUC from bad to good
    assert (grouped.high - grouped.low) > 3 * (images.high - images.low)
    assert grouped.low < 0.35 and grouped.high > 0.65


def test_one_group_has_no_interval_and_undefined_metrics_stay_undefined():
    y, s, _ = clustered(groups=2)
    single = grouped_bootstrap(accuracy, y, s, ["only"] * len(y))
    assert single.value == pytest.approx(accuracy(y, s)) and single.low is None and "1 group" in single.text()
    one_class = grouped_bootstrap(roc_auc, np.zeros(10), np.linspace(0, 1, 10), [str(i % 3) for i in range(10)])
    assert one_class.value is None and one_class.text() == "n/a"


def test_interval_is_reproducible_and_contains_the_value():
    y, s, groups = clustered(seed=3)
    a = grouped_bootstrap(roc_auc, y, s, groups, seed=7, resamples=300)
    b = grouped_bootstrap(roc_auc, y, s, groups, seed=7, resamples=300)
    assert a == b and a.low <= a.value <= a.high
