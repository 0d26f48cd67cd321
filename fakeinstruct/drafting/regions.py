"""Where in the image an anomalous measurement is strongest: the tile of a 3x3 grid that reads worst.

The measurements of :mod:`.measure` describe the whole image; a reviewer, and enhancement advice, need a place to
look at. Each attribute's measurement is taken again on every tile of a 3x3 grid and the tile that reads furthest
on the anomalous side is its region, ``[x0, y0, x1, y1]`` in pixels (x1, y1 exclusive). Label-blind, like the
measurements.
"""

from __future__ import annotations

import numpy as np

from fakeinstruct.drafting import measure as m

GRID = 3


def _tiles(height: int, width: int):
    ys = np.linspace(0, height, GRID + 1).astype(int)
    xs = np.linspace(0, width, GRID + 1).astype(int)
    for i in range(GRID):
        for j in range(GRID):
            yield [int(xs[j]), int(ys[i]), int(xs[j + 1]), int(ys[i + 1])]


def _worst(rgb: np.ndarray, score, lower_is_worse: bool) -> list[int] | None:
    """The box of the tile with the lowest (or highest) finite ``score(tile_rgb)``."""
    best, box = None, None
    for x0, y0, x1, y1 in _tiles(*rgb.shape[:2]):
        value = score(rgb[y0:y1, x0:x1])
        if value is None or not np.isfinite(value):
            continue
        if best is None or (value < best if lower_is_worse else value > best):
            best, box = value, [x0, y0, x1, y1]
    return box


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _noise(rgb: np.ndarray) -> float:
    luma = _luma(rgb)
    # flat pixels chosen as measure_array chooses them: by the gradient of a twice-smoothed copy
    return m._flat_noise(luma, m._gradient_magnitude(m._box3(m._box3(luma))))


def _detail(rgb: np.ndarray) -> float:
    luma = _luma(rgb)
    return m._detail_ratio(luma, m._gradient_magnitude(luma))


def _fine_power(rgb: np.ndarray) -> float:
    return m._hf_share(_luma(rgb))


def _oversaturated(rgb: np.ndarray) -> float:
    return m._saturation(rgb.astype(np.float64))[1]


# attribute -> (tile score, whether a lower score is the more anomalous)
_SCORES = {
    "noise": (_noise, True),
    "clarity": (_detail, True),
    "texture": (_fine_power, True),
    "color": (_oversaturated, False),
}


def region(rgb: np.ndarray, attribute: str) -> list[int] | None:
    """The region of ``attribute``'s strongest anomaly in the full image ``rgb``, within the part that is measured,
    or None for attributes read from the whole image (edges, compression)."""
    if attribute not in _SCORES:
        return None
    x0, y0 = m.crop_origin(*rgb.shape[:2])
    crop = m._grid_aligned_crop(rgb, m.MAX_SIDE)
    if min(crop.shape[:2]) < GRID * m.MIN_SIDE:
        return None
    score, lower = _SCORES[attribute]
    box = _worst(crop, score, lower)
    return None if box is None else [box[0] + x0, box[1] + y0, box[2] + x0, box[3] + y0]
