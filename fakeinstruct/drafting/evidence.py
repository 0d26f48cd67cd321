"""Evidence rules of the drafting tool: thresholds on the measurements, and the sentences they become.

Every verdict here is **label-blind**: it depends on :mod:`fakeinstruct.drafting.measure`'s numbers and the global
:class:`Thresholds` only. The label enters only in :mod:`fakeinstruct.drafting.reasoning`, which writes the reasoning
and the conclusion from the findings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from fakeinstruct.drafting.measure import Measurements

ATTRIBUTES = ("texture", "edges", "clarity", "noise", "compression", "color")


@dataclass(frozen=True)
class Limit:
    """Where a measurement turns anomalous, and where the anomaly is as strong as it gets.

    ``full`` lies on the anomalous side of ``limit``: below it for measurements where low values are the
    trace (noise), above it where high values are (halos). Severity grows linearly from 0 at ``limit`` to
    1 at ``full``.
    """

    limit: float
    full: float

    def __post_init__(self) -> None:
        if self.full == self.limit:
            raise ValueError(f"Limit needs full != limit, got {self.limit} for both")

    def passed(self, value: float) -> bool:
        return value < self.limit if self.full < self.limit else value > self.limit

    def severity(self, value: float) -> float:
        fraction = (value - self.limit) / (self.full - self.limit)
        # An anomalous verdict always carries some severity, however close to the limit.
        return round(min(1.0, max(0.05, fraction)), 2)


@dataclass(frozen=True)
class Thresholds:
    """Global, label-blind limits for the verdicts.

    Chosen on the bundled 192-image sample (96 camera crops, 96 Real-ESRGAN crops, all resized to 112 px and saved
    as JPEG alike) from the real images alone, so that each measurement turns anomalous for a small, fixed share of
    camera photos: about 10 % where the measurement separates the labels there (noise, detail), about 5 % where it
    does not or where an attribute reads two measurements (grid, lattice, halo, saturation), so those fire on
    extremes only. Rounded percentiles of the 96 real images (ROC AUC of the measurement for "fake" in brackets):

    - noise_std 0.45 grey levels: 10th percentile 0.46 (0.26: fakes have less grain; their median is 0.56).
    - detail_ratio 0.04: 10th percentile 0.040 (0.31).
    - grid_ratio 1.04: 5th percentile 1.044 (0.58). Every image went through the same JPEG, so a missing grid says
      little about generation here; it still flags an image with no grid at all.
    - lattice_ratio 1.05: 95th percentile 1.049 (0.57); it counts unless a JPEG grid is present and stronger
      (grid_ratio past its limit and above the lattice ratio), because a coarse JPEG's in-block ramps
      raise it too (see ``measure._block_grids``).
    - halo 0.21: 95th percentile 0.214 (0.46).
    - oversaturated_share 0.95: 95th percentile 0.91 (0.50).

    Two measurements have a low tail that does not separate the labels here, so their limits sit past
    every real image instead: hf_share 0.0001 (the 5th percentile of the reals is 0.00025; defocus and sky look
    like this too), and tonal_gap_share 0.3 (no sample image is posterised; a gradient posterised to steps
    of 2 levels reads 0.48).

    ``full`` values (severity 1) are physical end points: grain at the 8-bit rounding floor, no fine-band
    power, no grid, an overshoot most of the edge height, a gradient posterised to steps of 6 or more.
    """

    noise_std: Limit = Limit(0.45, 0.2)
    hf_share: Limit = Limit(0.0001, 0.0)
    lattice_ratio: Limit = Limit(1.05, 1.3)
    grid_ratio: Limit = Limit(1.04, 1.0)
    halo: Limit = Limit(0.21, 0.8)
    detail_ratio: Limit = Limit(0.04, 0.01)
    oversaturated_share: Limit = Limit(0.95, 1.0)
    tonal_gap_share: Limit = Limit(0.3, 0.8)
    # Fewer clean edge points than this is too little to judge halos on.
    min_edges: int = 10


DEFAULT_THRESHOLDS = Thresholds()


@dataclass
class Finding:
    name: str
    verdict: str
    severity: float | None
    evidence: str
    # The inference for the reasoning: what this evidence says about the image.
    why: str
    # For an anomalous finding on a real image: the innocent explanation a camera photo can have.
    benign: str = ""
    # For an anomalous finding: what would have to change for it to read as a camera's, with "{where}" standing for
    # the region once it is known (see located()).
    advice: str = ""
    region: list[int] | None = None

    def located(self, region: list[int] | None) -> Finding:
        """This finding with its region, and its advice saying where."""
        where = f" (around x {region[0]}-{region[2]}, y {region[1]}-{region[3]})" if region else ""
        return replace(self, region=region, advice=self.advice.replace("{where}", where))

    @property
    def anomalous(self) -> bool:
        return self.verdict == "anomalous"


class _Trace(NamedTuple):
    """One measurement past its limit: how far, the evidence sentence, its two readings, and the fix."""

    severity: float
    evidence: str
    why: str
    benign: str
    advice: str


def _natural(name: str, evidence: str, why: str) -> Finding:
    return Finding(name, "natural", None, evidence, why)


def _anomalous(name: str, traces: list[_Trace]) -> Finding:
    traces = sorted(traces, key=lambda trace: -trace.severity)
    return Finding(
        name,
        "anomalous",
        traces[0].severity,
        " ".join(trace.evidence for trace in traces),
        "; ".join(trace.why for trace in traces),
        "; ".join(trace.benign for trace in traces),
        " ".join(trace.advice for trace in traces),
    )


def _percent(share: float) -> str:
    value = 100.0 * share
    if value == 0:
        return "0%"
    if value < 0.001:
        return "under 0.001%"
    return f"{value:.2g}%" if value < 10 else f"{value:.0f}%"


def _noise(m: Measurements, t: Thresholds) -> Finding:
    value = m.noise_std
    if t.noise_std.passed(value):
        trace = _Trace(
            t.noise_std.severity(value),
            f"Flat areas carry almost no sensor grain (residual std {value:.1f} grey levels); the surfaces look "
            "airbrushed.",
            "a camera sensor leaves grain even in flat areas, and these are nearly grain-free",
            "downscaling and denoising in editing also wipe grain out",
            f"Add fine, even sensor grain to the flat areas{{where}}: they carry {value:.1f} grey levels of noise, "
            "where a camera sensor leaves one or more.",
        )
        return _anomalous("noise", [trace])
    amount = "clear, even grain" if value >= 2.0 else "faint, even grain"
    return _natural(
        "noise",
        f"Flat areas carry {amount} (residual std {value:.1f} grey levels), as a camera sensor leaves it.",
        "the grain in flat areas is what a camera sensor leaves",
    )


def _texture(m: Measurements, t: Thresholds) -> Finding:
    traces = []
    lattice = t.lattice_ratio.passed(m.lattice_ratio)
    # A coarse JPEG raises the lattice ratio too, but then its own grid is the stronger of the two.
    jpeg_explains_lattice = not t.grid_ratio.passed(m.grid_ratio) and m.grid_ratio > m.lattice_ratio
    if lattice and not jpeg_explains_lattice:
        traces.append(
            _Trace(
                t.lattice_ratio.severity(m.lattice_ratio),
                f"Fine texture repeats on a 4-pixel lattice (lattice ratio {m.lattice_ratio:.3f}), detail stamped "
                "on by a 4x upsampler rather than grown from the surface.",
                "a 4-pixel lattice is the stamp of a 4x upsampling layer",
                "a periodic pattern in the scene can mimic a lattice",
                f"Break up the 4-pixel repeat in the fine texture{{where}} (lattice ratio {m.lattice_ratio:.3f}) with "
                "irregular detail that varies from place to place.",
            )
        )
    if t.hf_share.passed(m.hf_share):
        traces.append(
            _Trace(
                t.hf_share.severity(m.hf_share),
                f"Almost no power is left in the finest detail band ({_percent(m.hf_share)} of the spectrum above "
                "0.25 cycles/pixel); surfaces look smooth and waxy.",
                "an empty finest-detail band is what an image rebuilt from a smaller one looks like",
                "a defocused or featureless subject also leaves the finest band empty",
                f"Restore the finest detail{{where}}: only {_percent(m.hf_share)} of the spectral power lies above "
                "0.25 cycles/pixel, where a sharp photograph keeps a few percent.",
            )
        )
    if traces:
        return _anomalous("texture", traces)
    if lattice:
        pattern = (
            f"its weak 4-pixel periodicity (lattice ratio {m.lattice_ratio:.3f}) follows the JPEG blocks, "
            "not an upsampler"
        )
    else:
        pattern = f"with no repeating lattice (lattice ratio {m.lattice_ratio:.3f})"
    return _natural(
        "texture",
        f"Fine texture is irregular, {pattern}, and {_percent(m.hf_share)} of the spectral power lies in the "
        "finest band.",
        "the fine texture is irregular, without the lattice an upsampler stamps",
    )


def _compression(m: Measurements, t: Thresholds) -> Finding:
    value = m.grid_ratio
    if t.grid_ratio.passed(value):
        trace = _Trace(
            t.grid_ratio.severity(value),
            f"No 8x8 JPEG block grid at any offset (grid ratio {value:.2f}), although a camera photo nearly always "
            "went through JPEG.",
            "a camera photo nearly always carries the 8x8 grid of its JPEG, and this image carries none",
            "a photo saved losslessly, or resized after decoding, carries no grid either",
            f"Pass the image through an 8x8-block JPEG as a camera would: it shows no block grid (grid ratio "
            f"{value:.2f}).",
        )
        return _anomalous("compression", [trace])
    strength = "Faint" if value < 1.2 else "Clear" if value < 1.5 else "Strong"
    if m.grid_aligned:
        where, kind = "aligned with the frame", "typical of a camera JPEG"
    else:
        where = f"offset from the frame by ({m.grid_phase_x}, {m.grid_phase_y}) pixels"
        kind = "the trace of a camera JPEG that was later cropped"
    return _natural(
        "compression",
        f"{strength} 8x8 JPEG block grid {where} (grid ratio {value:.2f}), {kind}.",
        "the 8x8 JPEG grid shows the image went through JPEG compression, as camera photos do",
    )


def _edges(m: Measurements, t: Thresholds) -> Finding:
    value, count = m.halo, m.edge_count
    if count < t.min_edges:
        return _natural(
            "edges",
            f"The image has few clean, strong contours ({count} edge points), so there is little edge to halo.",
            "the few clean contours there are show no halo",
        )
    if t.halo.passed(value):
        trace = _Trace(
            t.halo.severity(value),
            f"Strong contours carry halos: the pixels beside them overshoot the plateau by {value:.0%} of the edge "
            f"height on average ({count} edge points), a bright and a dark rim.",
            "optics blur an edge monotonically, so halos come from sharpening or a generator",
            "in-camera or editing sharpening also draws halos",
            f"Soften the bright and dark rims along the strong contours: they overshoot by {value:.0%} of the edge "
            "height, where optics blur an edge without a rim.",
        )
        return _anomalous("edges", [trace])
    if value < 0.05:
        return _natural(
            "edges",
            f"Contours fall off cleanly, overshooting by only {value:.0%} of the edge height on average "
            f"({count} edge points), with no halo.",
            "contours fall off without halos, as optics blur them",
        )
    return _natural(
        "edges",
        f"Contours overshoot by {value:.0%} of the edge height on average ({count} edge points), a mild rim "
        "within what in-camera sharpening leaves.",
        "contours show at most the mild rim of in-camera sharpening",
    )


def _clarity(m: Measurements, t: Thresholds) -> Finding:
    value = m.detail_ratio
    if t.detail_ratio.passed(value):
        trace = _Trace(
            t.detail_ratio.severity(value),
            f"Fine detail between contours is faint for how crisp the contours are (detail-to-contour ratio "
            f"{value:.3f}): texture looks smeared while outlines stay sharp.",
            "smeared detail between crisp outlines is how an upscaler fails",
            "defocus and motion blur also soften fine detail",
            f"Bring the detail between the contours{{where}} up to the sharpness of the outlines (detail-to-contour "
            f"ratio {value:.3f}; a focused photograph reads about 0.1).",
        )
        return _anomalous("clarity", [trace])
    return _natural(
        "clarity",
        f"Fine detail is resolved in step with the contours (detail-to-contour ratio {value:.3f}).",
        "fine detail is resolved as sharply as the contours",
    )


def _color(m: Measurements, t: Thresholds) -> Finding:
    traces = []
    if t.oversaturated_share.passed(m.oversaturated_share):
        traces.append(
            _Trace(
                t.oversaturated_share.severity(m.oversaturated_share),
                f"{m.oversaturated_share:.0%} of the visible pixels are saturated above 0.9 (mean saturation "
                f"{m.saturation_mean:.2f}); the colour looks pushed to its limit.",
                "colour pushed to full saturation almost everywhere comes from a generator or a heavy edit",
                "a vividly coloured subject under strong light also saturates",
                f"Pull the saturation back{{where}}: {m.oversaturated_share:.0%} of the visible pixels sit above 0.9.",
            )
        )
    if t.tonal_gap_share.passed(m.tonal_gap_share):
        traces.append(
            _Trace(
                t.tonal_gap_share.severity(m.tonal_gap_share),
                f"Smooth gradients skip {m.tonal_gap_share:.0%} of their tonal levels in small regular gaps, which "
                "shows as banding (posterisation).",
                "gradients that skip levels were quantised coarsely, not recorded smoothly",
                "a strong tone curve applied in editing also skips levels",
                f"Smooth the banded gradients: they skip {m.tonal_gap_share:.0%} of their tonal levels.",
            )
        )
    if traces:
        return _anomalous("color", traces)
    tone = "muted" if m.saturation_mean < 0.2 else "vivid" if m.saturation_mean > 0.6 else "moderately saturated"
    return _natural(
        "color",
        f"Colour is {tone} (mean saturation {m.saturation_mean:.2f}) and smooth gradients show no posterisation "
        f"({m.tonal_gap_share:.0%} of their levels skipped).",
        "colour and gradients are smooth and unforced",
    )


DRAFTERS = {
    "texture": _texture,
    "edges": _edges,
    "clarity": _clarity,
    "noise": _noise,
    "compression": _compression,
    "color": _color,
}
