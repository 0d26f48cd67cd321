"""Two classical baselines every detector number stands beside, fitted on the train split and scored on the test one.

- ``spectrum``: a logistic regression on the image's radially averaged log power spectrum (31 bands from DC to
  Nyquist, Hann window, luma, normalised by total power): what an upsampler's missing or periodic fine-scale power
  looks like to a linear model.
- ``measurements``: a logistic regression on the nine measurements of :mod:`fakeinstruct.drafting.measure` (grain,
  fine-band share, JPEG grid, 4-pixel lattice, halos, detail ratio, saturation, posterisation).

Both are standardised and fitted with scikit-learn's defaults (L2, C = 1), tuned on nothing: a baseline that is
tuned on the test split is no yardstick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

BANDS = 31
MEASUREMENTS = (
    "noise_std",
    "hf_share",
    "grid_ratio",
    "lattice_ratio",
    "halo",
    "detail_ratio",
    "saturation_mean",
    "oversaturated_share",
    "tonal_gap_share",
)


def _rgb(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def spectrum_features(image) -> np.ndarray:
    """The radially averaged log power spectrum of the image's luma, in ``BANDS`` bands, normalised by total power."""
    luma = _rgb(image).astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    luma = luma - luma.mean()
    window = np.outer(np.hanning(luma.shape[0]), np.hanning(luma.shape[1]))
    power = np.abs(np.fft.fftshift(np.fft.fft2(luma * window))) ** 2
    fy = np.fft.fftshift(np.fft.fftfreq(luma.shape[0]))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(luma.shape[1]))[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    band = np.minimum((radius / 0.5 * BANDS).astype(int), BANDS)  # radius 0.5 is Nyquist; corners beyond are dropped
    total = power[band < BANDS].sum() or 1.0
    sums = np.bincount(band.ravel(), weights=power.ravel(), minlength=BANDS + 1)[:BANDS]
    counts = np.maximum(np.bincount(band.ravel(), minlength=BANDS + 1)[:BANDS], 1)
    return np.log(sums / counts / total + 1e-12)


def measurement_features(image) -> np.ndarray:
    from fakeinstruct.drafting.measure import measure_array

    measured = measure_array(_rgb(image))
    return np.array([getattr(measured, name) for name in MEASUREMENTS], dtype=np.float64)


BASELINES: dict[str, Callable] = {"spectrum": spectrum_features, "measurements": measurement_features}


def _features(images: Sequence, featurize: Callable) -> np.ndarray:
    return np.stack([featurize(image.open()) for image in images])


def baseline_scores(train: Sequence, test: Sequence) -> dict[str, np.ndarray]:
    """p_fake of each baseline on the ``test`` images, fitted on the ``train`` images (``LabeledImage`` lists)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.array([image.label for image in train])
    if len(set(y.tolist())) < 2:
        raise ValueError("the train split holds one class only: the baselines cannot be fitted")
    out = {}
    for name, featurize in BASELINES.items():
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        model.fit(_features(train, featurize), y)
        out[name] = model.predict_proba(_features(test, featurize))[:, 1]
    return out
