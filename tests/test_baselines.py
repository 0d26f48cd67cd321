"""The baselines on a fixture where the answer is known: they find what they can see, and only that."""

import io

import numpy as np
import pytest
from PIL import Image

from modeling.evaluation.baselines import baseline_scores, spectrum_features
from modeling.evaluation.metrics import roc_auc
from modeling.scoring.split_images import LabeledImage


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def scene(rng, upscaled: bool) -> np.ndarray:
    """A smooth random scene; real ones carry sensor-like grain, 'fakes' are 4x upscales without it."""
    base = rng.normal(128, 30, (28, 28, 3))
    small = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    big = np.asarray(small.resize((112, 112), Image.Resampling.BICUBIC), dtype=np.float64)
    if not upscaled:
        big = big + rng.normal(0, 6, big.shape)
    return np.clip(big, 0, 255).astype(np.uint8)


def images(n: int, seed: int) -> list[LabeledImage]:
    rng = np.random.default_rng(seed)
    return [
        LabeledImage(f"i{seed}-{k}", k % 2, "x", data=png(scene(rng, upscaled=bool(k % 2))), group=f"g{k // 4}")
        for k in range(n)
    ]


def test_baselines_separate_what_the_spectrum_shows():
    train, test = images(40, seed=0), images(20, seed=1)
    scores = baseline_scores(train, test)
    y = np.array([i.label for i in test])
    assert set(scores) == {"spectrum", "measurements"}
    assert roc_auc(y, scores["spectrum"]) > 0.95 and roc_auc(y, scores["measurements"]) > 0.95


def test_baselines_are_at_chance_when_nothing_separates_the_labels():
    train, test = images(40, seed=2), images(40, seed=3)
    shuffled = np.random.default_rng(4).permutation([i.label for i in train])
    scores = baseline_scores(
        [LabeledImage(i.chain_id, int(k), i.generator, data=i.data) for i, k in zip(train, shuffled, strict=True)],
        test,
    )
    y = np.array([i.label for i in test])
    assert 0.2 < roc_auc(y, scores["spectrum"]) < 0.8  # labels carry no information: no better than chance


def test_spectrum_features_are_finite_and_fixed_length():
    image = Image.fromarray(np.zeros((112, 112, 3), np.uint8))
    features = spectrum_features(image)
    assert features.shape == (31,) and np.isfinite(features).all()


def test_one_class_train_split_is_refused():
    train = [i for i in images(8, seed=5) if i.label == 0]
    with pytest.raises(ValueError, match="one class only"):
        baseline_scores(train, images(4, seed=6))
