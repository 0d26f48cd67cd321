"""Forensic measurements of one RGB image, in pure numpy + Pillow.

Each measurement is a number a reviewer can check by eye and a sentence can cite. They target the traces a
camera pipeline leaves (sensor grain, a JPEG block grid, optical edge fall-off, dense tonal gradation) and
the traces a generator or upscaler leaves instead (noise-free flat areas, missing fine-scale power, halos
along contours, smeared detail between crisp outlines, posterised or oversaturated colour).

Everything works on the luma plane unless said otherwise; an image larger than ``MAX_SIDE`` is measured on a
central crop whose origin sits on the 8x8 grid, so the crop keeps the JPEG grid phase of the full image and
the cost stays bounded (the traces are local, a crop keeps them; resizing would destroy them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

MAX_SIDE = 512
MIN_SIDE = 16

# Noise: the box-filter residual of white noise with std s has std s * sqrt(8/9); undo that gain so the
# number reads directly as the sensor noise std in grey levels.
_BOX_RESIDUAL_GAIN = np.sqrt(8.0 / 9.0)
_ABS_TO_STD = np.sqrt(np.pi / 2)  # E|x| = std * sqrt(2/pi) for Gaussian x
_FLAT_QUANTILE = 0.30  # the flattest 30 % of pixels stand for the "flat areas" of the image

_HF_CUTOFF = 0.25  # cycles/pixel: above the Nyquist limit of a 2x downsample, so resampling empties it

_RATIO_FLOOR = 0.05  # grey levels added to every phase mean of the grid and lattice ratios
_GRID_CLIP = 3.0  # |diff| capped at 3x its median, so a few strong edges on a grid line cannot fake a grid

_EDGE_REACH = 6  # pixels either side of an edge centre that the halo profile spans
_EDGE_MIN_STEP = 24.0  # grey levels: a contour weaker than this is texture, not an edge to judge
_EDGE_QUANTILE = 0.90

_DETAIL_QUANTILE = 0.80  # detail is read on the 80 % of pixels with the weakest gradient, away from edges
_CONTOUR_QUANTILE = 0.98  # the 2 % of pixels with the strongest gradient are the crisp contours

_PLATEAU_TOLERANCE = 0.15  # an edge counts when both plateaus are flat to 15 % of its height

_TONAL_BLOCK = 16
_TONAL_MIN_SPAN = 4  # levels: a block narrower than this has no gradient to skip levels in
_TONAL_MAX_SPAN = 32  # levels: a block wider than this holds an edge, not a smooth gradient
_TONAL_MAX_GAP = 7  # levels: a posterised gradient with steps of 2 to 8 levels skips 1 to 7 at a time


@dataclass(frozen=True)
class Measurements:
    """Measurements of one image. Grey levels are on the 0..255 scale of 8-bit luma.

    - ``noise_std``: grain in the flattest 30 % of the image, as a noise std in grey levels.
    - ``hf_share``: share of spectral power above 0.25 cycles/pixel (the finest detail band).
    - ``grid_ratio``: JPEG 8x8 block-grid strength (1.0 = none); ``grid_phase_x/y``: where its boundaries
      sit, 0 = on the image's own 8x8 grid.
    - ``lattice_ratio``: strength of a 4-pixel upsampling lattice (1.0 = none).
    - ``halo``: two-sided overshoot (a bright and a dark rim) beside clean strong edges, as a fraction of
      the edge height; ``edge_count``: how many edge points it averages (0: no edge to judge).
    - ``detail_ratio``: RMS fine-detail amplitude away from edges over the gradient of the crispest contours.
    - ``saturation_mean``: mean HSV saturation; ``oversaturated_share``: share of visible pixels with
      saturation above 0.9.
    - ``tonal_gap_share``: share of levels skipped inside smooth gradients (posterisation).
    - ``width``, ``height``: of the measured area (at most ``MAX_SIDE`` a side).
    """

    noise_std: float
    hf_share: float
    grid_ratio: float
    grid_phase_x: int
    grid_phase_y: int
    lattice_ratio: float
    halo: float
    edge_count: int
    detail_ratio: float
    saturation_mean: float
    oversaturated_share: float
    tonal_gap_share: float
    width: int
    height: int

    @property
    def grid_aligned(self) -> bool:
        """Whether the JPEG grid sits on the image's own 8x8 grid, as in an uncropped camera JPEG."""
        return self.grid_phase_x == 0 and self.grid_phase_y == 0

    def as_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "grid_aligned": self.grid_aligned}


def decode_rgb(path: str | Path) -> np.ndarray:
    """Decode an image (within the image limits, any mode: :func:`fakeinstruct.images.to_rgb`) to an ``(H, W, 3)``
    uint8 array."""
    from fakeinstruct.images import load_rgb

    return np.asarray(load_rgb(path))


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image to an ``(H, W, 3)`` uint8 array, cropped centrally to at most ``MAX_SIDE`` a side."""
    return _grid_aligned_crop(decode_rgb(path), MAX_SIDE)


def measure_image(path: str | Path) -> Measurements:
    return measure_array(load_rgb(path))


def measure_array(rgb: np.ndarray) -> Measurements:
    """Measure an ``(H, W, 3)`` uint8 RGB array of at least ``MIN_SIDE`` pixels a side."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image is {rgb.shape[1]}x{rgb.shape[0]}, smaller than {MIN_SIDE} px on a side")
    rgb = _grid_aligned_crop(rgb, MAX_SIDE)
    rgbf = rgb.astype(np.float64)
    luma = rgbf @ np.array([0.299, 0.587, 0.114])
    smooth = _box3(luma)
    # Twice-smoothed gradient: flat areas are chosen by content, hardly by the noise that is measured in them.
    grad = _gradient_magnitude(_box3(smooth))

    grid_ratio, phase_x, phase_y, lattice_ratio = _block_grids(luma)
    halo, edge_count = _halo(luma, smooth)
    saturation_mean, oversaturated = _saturation(rgbf)
    return Measurements(
        noise_std=_flat_noise(luma, grad),
        hf_share=_hf_share(luma),
        grid_ratio=grid_ratio,
        grid_phase_x=phase_x,
        grid_phase_y=phase_y,
        lattice_ratio=lattice_ratio,
        halo=halo,
        edge_count=edge_count,
        detail_ratio=_detail_ratio(luma, grad),
        saturation_mean=saturation_mean,
        oversaturated_share=oversaturated,
        tonal_gap_share=_tonal_gaps(rgb),
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
    )


def crop_origin(height: int, width: int, side: int = MAX_SIDE) -> tuple[int, int]:
    """(x0, y0) of the central crop that is measured, on the 8x8 grid."""
    return max(0, (width - side) // 2) // 8 * 8, max(0, (height - side) // 2) // 8 * 8


def _grid_aligned_crop(rgb: np.ndarray, side: int) -> np.ndarray:
    x0, y0 = crop_origin(*rgb.shape[:2], side)
    return rgb[y0 : y0 + side, x0 : x0 + side]


def _box3(plane: np.ndarray) -> np.ndarray:
    padded = np.pad(plane, 1, mode="edge")
    h, w = plane.shape
    return sum(padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9.0


def _gradients(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    padded = np.pad(plane, 1, mode="edge")
    gx = (padded[1:-1, 2:] - padded[1:-1, :-2]) / 2.0
    gy = (padded[2:, 1:-1] - padded[:-2, 1:-1]) / 2.0
    return gx, gy


def _gradient_magnitude(plane: np.ndarray) -> np.ndarray:
    gx, gy = _gradients(plane)
    return np.hypot(gx, gy)


def _flat_noise(luma: np.ndarray, grad: np.ndarray) -> float:
    """Sensor-noise std (grey levels) in the flattest pixels.

    Why a trace: every camera sensor adds faint, spatially uniform grain, visible even in a clear sky; a
    generator or upscaler synthesises smooth surfaces, so its flat areas are nearly noise-free. The 3x3 box
    residual removes the content; the gradient of a 5x5-smoothed copy picks flat pixels without being
    steered much by the noise itself; the mean absolute residual, scaled by sqrt(pi/2), is the std of
    Gaussian noise (Immerkaer's estimator) and stays finer than a median on 8-bit data.
    """
    residual = (luma - _box3(luma))[1:-1, 1:-1]
    inner = grad[1:-1, 1:-1]
    flat = residual[inner <= np.quantile(inner, _FLAT_QUANTILE)]
    return float(np.mean(np.abs(flat)) * _ABS_TO_STD / _BOX_RESIDUAL_GAIN)


def _hf_share(luma: np.ndarray) -> float:
    """Share of spectral power above ``_HF_CUTOFF`` cycles/pixel.

    Why a trace: a camera image keeps power up to the pixel scale (fine texture, grain); an image rebuilt
    from a low-resolution version has to invent that band and often leaves it short, so surfaces look
    smooth or waxy. The Hann window stops the frame border from leaking power into every frequency; only
    the inscribed disc (radius 0.5) counts, so every direction weighs alike (as in the azimuthal average).
    """
    h, w = luma.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2((luma - luma.mean()) * window)) ** 2
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij"))
    disc = (radius > 0) & (radius <= 0.5)
    total = power[disc].sum()
    return float(power[disc & (radius > _HF_CUTOFF)].sum() / total) if total > 0 else 0.0


def _phase_profile(luma: np.ndarray, axis: int) -> np.ndarray:
    """Mean clipped |difference| between neighbours across each of the 8 boundary phases along ``axis``.

    Phase p collects the differences between pixels 8k+p-1 and 8k+p, so phase 0 is a boundary of the 8x8
    grid that starts at the image origin. Clipping at a few times the median difference keeps a handful of
    strong edges that happen to lie on one phase from passing for a grid.
    """
    diff = np.abs(np.diff(luma, axis=axis))
    diff = np.minimum(diff, _GRID_CLIP * max(float(np.median(diff)), 1.0))
    profile = diff.mean(axis=1 - axis)
    phase_of = (np.arange(profile.size) + 1) % 8
    return np.array([profile[phase_of == p].mean() for p in range(8)])


def _block_grids(luma: np.ndarray) -> tuple[float, int, int, float]:
    """JPEG 8x8 grid ratio with its phase per axis, and the 4-pixel lattice ratio of a 4x upsampler.

    Why a trace: JPEG codes 8x8 blocks independently, so neighbours across a block boundary differ a little
    more than neighbours inside a block. A camera photo nearly always went through JPEG; a generated image
    written straight to PNG never did, and resampling wipes out an earlier grid. A 4x upsampling layer
    (pixel shuffle, transposed convolution) instead stamps a lattice with a 4-pixel period, aligned with
    the frame, because each 4x4 output cell is drawn from one input position.

    JPEG grid ratio: mean |difference| at the strongest boundary phase over the level inside the blocks,
    taken as the larger of the mean of the other phases and of the phase half a block away, so that a
    4-pixel lattice (which raises both) does not pass for a JPEG grid. Lattice ratio: the weaker of two
    phases 4 apart over the mean of the two phases halfway between them, best pair; a single JPEG spike
    does not raise it, but a coarse JPEG's smooth in-block ramps can (their slope peaks mid-block), so a
    lattice only means an upsampler where no stronger JPEG grid explains it. Both ratios are geometric means over the
    two axes (a real grid is there in both directions); 1.0 means none.
    """
    grids, phases, lattices = [], [], []
    for axis in (1, 0):
        # A small floor keeps the ratios finite and near 1 on flat images, where every difference is ~0.
        per_phase = _phase_profile(luma, axis) + _RATIO_FLOOR
        best = int(np.argmax(per_phase))
        inside = max(np.delete(per_phase, best).mean(), per_phase[(best + 4) % 8])
        grids.append(per_phase[best] / inside)
        phases.append(best)
        pairs = np.minimum(per_phase[:4], per_phase[4:])
        halfway = (np.roll(per_phase, -2)[:4] + np.roll(per_phase, -6)[:4]) / 2
        lattices.append(float(np.max(pairs / halfway)))
    return float(np.sqrt(grids[0] * grids[1])), phases[0], phases[1], float(np.sqrt(lattices[0] * lattices[1]))


def _halo(luma: np.ndarray, smooth: np.ndarray) -> tuple[float, int]:
    """Mean two-sided overshoot beside clean strong edges, as a fraction of the edge height, and the edge count.

    Why a trace: optics blur an edge monotonically from one side to the other. Sharpening and some
    upscalers push the pixels next to a contour past the plateau behind it, drawing a bright rim on the
    light side and a dark rim on the dark side. Each edge centre (a local gradient maximum across the edge,
    direction quantised to 8 neighbours) is read along its gradient, 6 pixels either way; only edges with
    flat plateaus at both ends count, so texture beside an edge is not taken for ringing. The overshoot is
    twice the smaller of the bright-side and dark-side excursions: sharpening rims both sides alike, while
    a thin dark line next to an edge (a cable, a reed) dips on one side only.
    """
    h, w = luma.shape
    gx, gy = _gradients(smooth)
    mag = np.hypot(gx, gy)
    angle = np.round(np.arctan2(gy, gx) / (np.pi / 4)).astype(int) % 8
    steps = np.array([(0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1)])
    dy, dx = steps[angle, 0], steps[angle, 1]

    reach = _EDGE_REACH
    ys, xs = np.mgrid[0:h, 0:w]
    inside = (ys >= reach) & (ys < h - reach) & (xs >= reach) & (xs < w - reach)
    strong = inside & (mag >= max(np.quantile(mag, _EDGE_QUANTILE), 1e-9))
    ys, xs, dy, dx = ys[strong], xs[strong], dy[strong], dx[strong]
    centre = mag[ys, xs]
    is_peak = (centre >= mag[ys + dy, xs + dx]) & (centre >= mag[ys - dy, xs - dx])
    ys, xs, dy, dx = ys[is_peak], xs[is_peak], dy[is_peak], dx[is_peak]

    offsets = np.arange(-reach, reach + 1)
    profile = luma[ys[:, None] + offsets * dy[:, None], xs[:, None] + offsets * dx[:, None]]
    low, high = profile[:, :2].mean(axis=1), profile[:, -2:].mean(axis=1)
    step = high - low
    flat_ends = np.maximum(np.abs(profile[:, 0] - profile[:, 1]), np.abs(profile[:, -1] - profile[:, -2]))
    keep = (step >= _EDGE_MIN_STEP) & (flat_ends <= _PLATEAU_TOLERANCE * step)
    if not keep.any():
        return 0.0, 0
    profile, low, high, step = profile[keep], low[keep], high[keep], step[keep]
    over = np.maximum(profile[:, reach + 1 : -2].max(axis=1) - high, 0.0)
    under = np.maximum(low - profile[:, 2:reach].min(axis=1), 0.0)
    # A halo rims both sides; a thin line beside an edge only dips on one, so the weaker side counts.
    return float(np.mean(np.minimum(2.0 * np.minimum(over, under) / step, 1.0))), int(keep.sum())


def _detail_ratio(luma: np.ndarray, grad: np.ndarray) -> float:
    """RMS fine detail (3x3 box residual) away from edges over the mean gradient of the crispest contours.

    Why a trace: in focus, a photo resolves fine detail wherever its contours are sharp. An upscaler keeps
    (or redraws) the outlines it could see in the small image but smears the detail between them, so fine
    detail is weak for how crisp the contours are.
    """
    residual = (luma - _box3(luma))[1:-1, 1:-1]
    inner = grad[1:-1, 1:-1]
    detail = np.sqrt(np.mean(residual[inner <= np.quantile(inner, _DETAIL_QUANTILE)] ** 2))
    contour = np.mean(inner[inner >= np.quantile(inner, _CONTOUR_QUANTILE)])
    return float(detail / contour) if contour > 0 else 0.0


def _saturation(rgbf: np.ndarray) -> tuple[float, float]:
    """Mean HSV saturation, and the share of visible pixels saturated above 0.9.

    Why a trace: generators and enhancement filters push colours towards fully saturated values that a
    camera only records under coloured light; the share ignores near-black pixels, whose saturation is noise.
    """
    top = rgbf.max(axis=2)
    bottom = rgbf.min(axis=2)
    visible = top >= 32
    saturation = np.where(top > 0, (top - bottom) / np.maximum(top, 1e-9), 0.0)
    oversaturated = float(np.mean(saturation[visible] > 0.9)) if visible.any() else 0.0
    return float(saturation.mean()), oversaturated


def _tonal_gaps(rgb: np.ndarray) -> float:
    """Share of levels skipped inside smooth gradients: short gaps in the level histograms of smooth blocks.

    Why a trace: a smooth real gradient passes through every level between its ends; posterisation (a tone
    curve stretched after quantisation, or a coarse colour palette) skips levels in a regular pattern,
    which shows as bands. It is judged per 16x16 block and channel, on blocks narrow enough in range to be
    one gradient, and only gaps of 1 to 7 levels between used levels count: a longer gap is a small
    feature of another colour inside the block, not banding.
    """
    side = _TONAL_BLOCK
    h, w = (rgb.shape[0] // side) * side, (rgb.shape[1] // side) * side
    blocks = rgb[:h, :w].reshape(h // side, side, w // side, side, 3).transpose(0, 2, 4, 1, 3)
    blocks = blocks.reshape(-1, side * side).astype(np.int64)
    low, high = blocks.min(axis=1), blocks.max(axis=1)
    span = high - low
    gradient = (span >= _TONAL_MIN_SPAN) & (span <= _TONAL_MAX_SPAN)
    if not gradient.any():
        return 0.0
    blocks, low, span = blocks[gradient], low[gradient], span[gradient]
    width = _TONAL_MAX_SPAN + 1
    codes = (np.arange(len(blocks))[:, None] * width + (blocks - low[:, None])).ravel()
    used = np.bincount(codes, minlength=len(blocks) * width).reshape(len(blocks), width) > 0
    empty = ~used
    skipped = 0
    for gap in range(1, _TONAL_MAX_GAP + 1):
        # A used level, then `gap` empty ones, then a used one again.
        run = used[:, : width - gap - 1] & used[:, gap + 1 :]
        for offset in range(1, gap + 1):
            run = run & empty[:, offset : width - gap - 1 + offset]
        skipped += gap * int(run.sum())
    return float(skipped / (span + 1).sum())
