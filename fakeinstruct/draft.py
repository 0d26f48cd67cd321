"""Machine drafts of FakeChain records: measure an image, then write per-attribute evidence from the numbers.

This is the machine half of FakeChain's human-machine annotation: a reviewer checks each draft against the
image instead of writing it. The six measured attributes (texture, edges, clarity, noise, compression,
colour) get their verdict **label-blind**, from :mod:`fakeinstruct.measure` and the global
:class:`Thresholds`; only the reasoning and the conclusion use the label, which comes from the manifest
(ground truth) and never from the measurements.

When the evidence contradicts the label (a fake with no anomalous attribute, or a real image where most
attributes look anomalous), nothing is invented to make it agree: the draft says so, and
:class:`DraftResult` carries the contradiction in ``needs_review``. Such a fake record does not validate
as a FakeChain (a fake needs anomalous evidence), which is the point: it must not reach training data
unreviewed.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from fakeinstruct import __version__
from fakeinstruct.errors import FakeChainError

if TYPE_CHECKING:
    from fakeinstruct.measure import Measurements

logger = logging.getLogger(__name__)

DRAFTED_BY = f"fakeinstruct draft {__version__} (measure.py)"
MACHINE_FIELDS = ["attributes", "reasoning", "conclusion"]
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

    Chosen on the bundled 192-image sample (96 camera crops, 96 Real-ESRGAN crops) from the real images
    alone, so that each measurement turns anomalous for a small, fixed share of camera photos: about 10 %
    where the measurement separates the labels there (noise, grid, detail), about 5 % where it does not or
    where an attribute reads two measurements (lattice, halo, saturation), so those fire on extremes only.
    Rounded percentiles of the 96 real images:

    - noise_std 0.5 grey levels: 10th percentile 0.52 (fakes: median 0.56, 5th percentile 0.36).
    - grid_ratio 1.08: 10th percentile 1.076; 95 % of the fakes lie below 1.067.
    - detail_ratio 0.04: 10th percentile 0.042.
    - lattice_ratio 1.05: 95th percentile 1.052; it counts unless a JPEG grid is present and stronger
      (grid_ratio past its limit and above the lattice ratio), because a coarse JPEG's in-block ramps
      raise it too (see ``measure._block_grids``). So gated, no real image of the sample passes it.
    - halo 0.2: 95th percentile 0.196; on this sample the fakes have no more halos than the reals.
    - oversaturated_share 0.95: 95th percentile 0.92, next real values 0.98 and up (saturated flowers).

    Two measurements have a low tail that does not separate the labels here, so their limits sit past
    every real image instead: hf_share 0.0001 (the smallest real value is 0.00014; at the 5th percentile,
    0.00025, it flags 6 reals and 6 fakes alike: defocus and sky look like this too), and tonal_gap_share
    0.3 (no sample image is posterised, the maximum over all 192 is 0.17; a gradient posterised to steps
    of 2 levels reads 0.48).

    ``full`` values (severity 1) are physical end points: grain at the 8-bit rounding floor, no fine-band
    power, no grid, an overshoot most of the edge height, a gradient posterised to steps of 6 or more.
    """

    noise_std: Limit = Limit(0.5, 0.2)
    hf_share: Limit = Limit(0.0001, 0.0)
    lattice_ratio: Limit = Limit(1.05, 1.3)
    grid_ratio: Limit = Limit(1.08, 1.0)
    halo: Limit = Limit(0.2, 0.8)
    detail_ratio: Limit = Limit(0.04, 0.01)
    oversaturated_share: Limit = Limit(0.95, 1.0)
    tonal_gap_share: Limit = Limit(0.3, 0.8)
    # Fewer clean edge points than this is too little to judge halos on.
    min_edges: int = 10
    # A real label is contradicted when at least this many of the six attributes look anomalous.
    real_contradiction: int = 3


DEFAULT_THRESHOLDS = Thresholds()


@dataclass
class DraftResult:
    """A drafted record and what a reviewer must look at before it is used.

    ``record`` is a FakeChain-shaped dict. ``needs_review`` lists problems in words, one per entry; it is
    empty for a draft that validates and whose evidence agrees with its label. ``contradicts_label`` is
    true when the measured evidence points away from the label.
    """

    record: dict[str, Any]
    needs_review: list[str]
    contradicts_label: bool
    measurements: Measurements


@dataclass
class _Finding:
    name: str
    verdict: str
    severity: float | None
    evidence: str
    # The inference for the reasoning: what this evidence says about the image.
    why: str
    # For an anomalous finding on a real image: the innocent explanation a camera photo can have.
    benign: str = ""

    @property
    def anomalous(self) -> bool:
        return self.verdict == "anomalous"


class _Trace(NamedTuple):
    """One measurement past its limit: how far, the evidence sentence, and its two readings."""

    severity: float
    evidence: str
    why: str
    benign: str


def _natural(name: str, evidence: str, why: str) -> _Finding:
    return _Finding(name, "natural", None, evidence, why)


def _anomalous(name: str, traces: list[_Trace]) -> _Finding:
    traces = sorted(traces, key=lambda trace: -trace.severity)
    return _Finding(
        name,
        "anomalous",
        traces[0].severity,
        " ".join(trace.evidence for trace in traces),
        "; ".join(trace.why for trace in traces),
        "; ".join(trace.benign for trace in traces),
    )


def _percent(share: float) -> str:
    value = 100.0 * share
    if value == 0:
        return "0%"
    if value < 0.001:
        return "under 0.001%"
    return f"{value:.2g}%" if value < 10 else f"{value:.0f}%"


def _noise(m: Measurements, t: Thresholds) -> _Finding:
    value = m.noise_std
    if t.noise_std.passed(value):
        trace = _Trace(
            t.noise_std.severity(value),
            f"Flat areas carry almost no sensor grain (residual std {value:.1f} grey levels); the surfaces look "
            "airbrushed.",
            "a camera sensor leaves grain even in flat areas, and these are nearly grain-free",
            "downscaling and denoising in editing also wipe grain out",
        )
        return _anomalous("noise", [trace])
    amount = "clear, even grain" if value >= 2.0 else "faint, even grain"
    return _natural(
        "noise",
        f"Flat areas carry {amount} (residual std {value:.1f} grey levels), as a camera sensor leaves it.",
        "the grain in flat areas is what a camera sensor leaves",
    )


def _texture(m: Measurements, t: Thresholds) -> _Finding:
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


def _compression(m: Measurements, t: Thresholds) -> _Finding:
    value = m.grid_ratio
    if t.grid_ratio.passed(value):
        trace = _Trace(
            t.grid_ratio.severity(value),
            f"No 8x8 JPEG block grid at any offset (grid ratio {value:.2f}), although a camera photo nearly always "
            "went through JPEG.",
            "a camera photo nearly always carries the 8x8 grid of its JPEG, and this image carries none",
            "a photo saved losslessly, or resized after decoding, carries no grid either",
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


def _edges(m: Measurements, t: Thresholds) -> _Finding:
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


def _clarity(m: Measurements, t: Thresholds) -> _Finding:
    value = m.detail_ratio
    if t.detail_ratio.passed(value):
        trace = _Trace(
            t.detail_ratio.severity(value),
            f"Fine detail between contours is faint for how crisp the contours are (detail-to-contour ratio "
            f"{value:.3f}): texture looks smeared while outlines stay sharp.",
            "smeared detail between crisp outlines is how an upscaler fails",
            "defocus and motion blur also soften fine detail",
        )
        return _anomalous("clarity", [trace])
    return _natural(
        "clarity",
        f"Fine detail is resolved in step with the contours (detail-to-contour ratio {value:.3f}).",
        "fine detail is resolved as sharply as the contours",
    )


def _color(m: Measurements, t: Thresholds) -> _Finding:
    traces = []
    if t.oversaturated_share.passed(m.oversaturated_share):
        traces.append(
            _Trace(
                t.oversaturated_share.severity(m.oversaturated_share),
                f"{m.oversaturated_share:.0%} of the visible pixels are saturated above 0.9 (mean saturation "
                f"{m.saturation_mean:.2f}); the colour looks pushed to its limit.",
                "colour pushed to full saturation almost everywhere comes from a generator or a heavy edit",
                "a vividly coloured subject under strong light also saturates",
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


_DRAFTERS = {
    "texture": _texture,
    "edges": _edges,
    "clarity": _clarity,
    "noise": _noise,
    "compression": _compression,
    "color": _color,
}


# How the reasoning names each attribute, and whether the name is plural.
_NOUNS = {
    "texture": ("texture", False),
    "edges": ("edges", True),
    "clarity": ("sharpness", False),
    "noise": ("noise", False),
    "compression": ("compression", False),
    "color": ("colour", False),
}


def _names(findings: list[_Finding]) -> str:
    names = [_NOUNS[f.name][0] for f in findings]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _looks(findings: list[_Finding]) -> str:
    plural = len(findings) > 1 or _NOUNS[findings[0].name][1]
    return "look" if plural else "looks"


def _step(finding: _Finding, verdict: str, clause: str) -> str:
    noun = _NOUNS[finding.name][0]
    return f"The {noun} {_looks([finding])} {verdict}{clause}."


def _reason(findings: list[_Finding], label: str, label_source: str, t: Thresholds) -> tuple[list[str], str, bool]:
    """Reasoning steps and conclusion from the findings to the given label; also whether they contradict it."""
    anomalous = sorted((f for f in findings if f.anomalous), key=lambda f: -(f.severity or 0.0))
    natural = [f for f in findings if not f.anomalous]
    total = len(findings)

    if label == "fake":
        if not anomalous:
            steps = [_step(f, "natural", f": {f.why}") for f in natural]
            steps.append(
                f"None of the {total} measured traces is anomalous: at the pixel level the image looks like a "
                f"camera photograph, and the fake label rests on its generation record ({label_source}), not "
                "on this evidence."
            )
            conclusion = (
                f"The image is fake according to its generation record, but its {_names(natural)} all look "
                "natural, so the verdict does not follow from the measured evidence."
            )
            return steps, conclusion, True
        steps = [_step(f, "anomalous", f": {f.why}") for f in anomalous]
        if natural:
            steps.append(
                f"The {_names(natural)} {_looks(natural)} natural, but a generator can get "
                f"{'these' if len(natural) > 1 else 'this'} right, so {'they do' if len(natural) > 1 else 'it does'} "
                "not speak for a camera."
            )
        steps.append(
            f"{len(anomalous)} of the {total} measured traces {'points' if len(anomalous) == 1 else 'point'} away "
            "from a camera pipeline, so the image is fake."
        )
        lead = anomalous[0]
        if len(anomalous) == 1:
            conclusion = f"The image is fake: the {_NOUNS[lead.name][0]} gives it away, since {lead.why}."
        else:
            conclusion = (
                f"The image is fake: its {_names(anomalous)} {'both' if len(anomalous) == 2 else 'all'} depart "
                f"from what a camera leaves, above all the {_NOUNS[lead.name][0]}, since {lead.why}."
            )
        return steps, conclusion, False

    steps = [_step(f, "natural", f": {f.why}") for f in natural]
    steps += [_step(f, "anomalous", f", but {f.benign}") for f in anomalous]
    if len(anomalous) >= t.real_contradiction:
        steps.append(
            f"{len(anomalous)} of the {total} measured traces look anomalous, more than a camera photograph "
            f"usually shows; the real label rests on the image's source record ({label_source}), not on this "
            "evidence."
        )
        conclusion = (
            f"The image is a real photograph according to its source, but its {_names(anomalous)} look anomalous, "
            "so the measured evidence alone would not clear it."
        )
        return steps, conclusion, True
    if anomalous:
        steps.append(
            f"The camera traces in the {_names(natural)} outweigh the anomalous {_names(anomalous)}, which a "
            "camera photograph can show too, so the image is real."
        )
        conclusion = (
            f"The image is a real photograph: its {_names(natural)} look as a camera leaves them, and the "
            f"anomalous {_names(anomalous)} {'are' if _looks(anomalous) == 'look' else 'is'} not specific to a "
            "generator."
        )
    else:
        steps.append(f"All {total} measured traces look as a camera leaves them, so the image is real.")
        conclusion = (
            f"The image is a real photograph: its {_names(natural)} all look as a camera pipeline leaves them, "
            "with no generator trace."
        )
    return steps, conclusion, False


def draft_from_measurements(
    measurements: Measurements,
    *,
    record_id: str,
    image_rel: str,
    label: str,
    source: dict[str, Any],
    label_source: str = "manifest",
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> DraftResult:
    """Draft a record from measurements already taken; see :func:`draft_record`."""
    from pydantic import ValidationError

    from fakeinstruct.chain import SCHEMA_VERSION, FakeChain

    findings = [_DRAFTERS[name](measurements, thresholds) for name in ATTRIBUTES]
    reasoning, conclusion, contradicts = _reason(findings, label, label_source, thresholds)
    attributes = []
    for f in findings:
        attribute = {"name": f.name, "verdict": f.verdict, "evidence": f.evidence}
        if f.severity is not None:
            attribute["severity"] = f.severity
        attributes.append(attribute)
    record = {
        "schema_version": SCHEMA_VERSION,
        "id": record_id,
        "image": image_rel,
        "label": label,
        "source": {k: v for k, v in source.items() if v is not None},
        "attributes": attributes,
        "reasoning": reasoning,
        "conclusion": conclusion,
        "enhancement": [],
        "provenance": {
            "annotation": "machine",
            "label_source": label_source,
            "drafted_by": DRAFTED_BY,
            "machine_fields": list(MACHINE_FIELDS),
        },
    }
    issues = []
    anomalous = [f.name for f in findings if f.anomalous]
    if contradicts and label == "fake":
        issues.append("contradiction: labelled fake, but no measured attribute is anomalous")
    elif contradicts:
        issues.append(f"contradiction: labelled real, but {len(anomalous)} attributes look anomalous")
    try:
        FakeChain.model_validate(record)
    except ValidationError as err:
        for problem in err.errors(include_url=False):
            where = ".".join(str(part) for part in problem["loc"]) or "record"
            issues.append(f"invalid: {where}: {problem['msg'].removeprefix('Value error, ')}")
    return DraftResult(record=record, needs_review=issues, contradicts_label=contradicts, measurements=measurements)


def draft_record(
    image_path: str | Path,
    *,
    record_id: str,
    image_rel: str,
    label: str,
    source: dict[str, Any],
    label_source: str = "manifest",
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> DraftResult:
    """Measure ``image_path`` and draft its FakeChain record.

    Returns a :class:`DraftResult`: ``record`` is the FakeChain-shaped dict (``image_rel`` is the path it
    records, ``image_path`` the file that is measured), ``needs_review`` what a reviewer must settle first.
    The verdicts never depend on ``label``; a record whose evidence contradicts it comes back all the same,
    flagged, and (for a fake without anomalous evidence) not valid as a FakeChain until a reviewer fixes it.
    """
    from fakeinstruct.measure import measure_image

    return draft_from_measurements(
        measure_image(image_path),
        record_id=record_id,
        image_rel=image_rel,
        label=label,
        source=source,
        label_source=label_source,
        thresholds=thresholds,
    )


@dataclass
class DraftSummary:
    """What :func:`draft_manifest` wrote."""

    out: Path
    review: Path
    records: int = 0
    valid: int = 0
    needs_review: int = 0
    contradictions: list[str] = field(default_factory=list)
    anomalous: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Task:
    line: int
    root: str
    record_id: str
    image_rel: str
    label: str
    source: dict[str, Any]
    label_source: str
    thresholds: Thresholds


def _read_manifest(root: Path, manifest: Path) -> list[tuple[int, dict[str, Any]]]:
    """Parse and check every manifest line before any image is measured, so a typo costs seconds, not a run."""
    from pydantic import ValidationError

    from fakeinstruct.chain import Source
    from fakeinstruct.images import resolve_inside

    entries, seen = [], {}
    with open(manifest, encoding="utf-8") as handle:
        for number, text in enumerate(handle, 1):
            if not text.strip():
                continue
            try:
                entry = json.loads(text)
            except json.JSONDecodeError as err:
                raise FakeChainError(f"invalid JSON: {err}", file=str(manifest), line=number) from err
            problem, where = _manifest_problem(entry, seen)
            if problem is None:
                try:
                    Source.model_validate(entry["source"])
                except ValidationError as err:
                    first = err.errors(include_url=False)[0]
                    problem = first["msg"].removeprefix("Value error, ")
                    where = ".".join(["source", *(str(part) for part in first["loc"])])
            if problem is None:
                try:
                    if not resolve_inside(root, entry["image"]).is_file():
                        problem, where = f"image file not found: {entry['image']}", "image"
                except FakeChainError as err:
                    problem, where = err.message, "image"
            if problem is not None:
                raise FakeChainError(problem, file=str(manifest), line=number, field=where)
            seen[entry["id"]] = number
            entries.append((number, entry))
    return entries


def _manifest_problem(entry: Any, seen: dict[str, int]) -> tuple[str | None, str]:
    if not isinstance(entry, dict):
        return f"expected a JSON object, got {type(entry).__name__}", "(line)"
    missing = [key for key in ("id", "image", "label", "source") if key not in entry]
    if missing:
        return f"missing key(s): {', '.join(missing)}", "(line)"
    if not isinstance(entry["id"], str) or not isinstance(entry["image"], str):
        return "id and image must be strings", "(line)"
    if entry["label"] not in ("real", "fake"):
        return f"label must be 'real' or 'fake', got {entry['label']!r}", "label"
    if entry["id"] in seen:
        return f"id {entry['id']!r} already used on line {seen[entry['id']]}", "id"
    return None, ""


def _draft_task(task: _Task) -> tuple[int, DraftResult | None, str | None, str | None]:
    """Run in a worker: the result, or the error as plain strings (exceptions with extra fields do not pickle)."""
    from fakeinstruct.images import check_image, resolve_inside

    try:
        # check_image refuses oversized files and decompression bombs before the measurement decodes them.
        check_image(Path(task.root), task.image_rel)
        result = draft_record(
            resolve_inside(Path(task.root), task.image_rel),
            record_id=task.record_id,
            image_rel=task.image_rel,
            label=task.label,
            source=task.source,
            label_source=task.label_source,
            thresholds=task.thresholds,
        )
    except FakeChainError as err:
        return task.line, None, err.message, err.field
    except (OSError, ValueError) as err:
        return task.line, None, f"image cannot be measured: {err}", "image"
    return task.line, result, None, None


def _results(tasks: list[_Task], workers: int) -> Iterator[tuple[int, DraftResult | None, str | None, str | None]]:
    if workers <= 1:
        yield from map(_draft_task, tasks)
        return
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        # map keeps manifest order, so the output is identical for any number of workers.
        yield from pool.map(_draft_task, tasks, chunksize=max(1, min(64, len(tasks) // (8 * workers))))
    finally:
        # After an error, drop the images still queued instead of measuring them all before raising.
        pool.shutdown(wait=True, cancel_futures=True)


def default_review_path(out: Path) -> Path:
    return out.with_name(out.stem + ".review.jsonl")


def draft_manifest(
    root: str | Path,
    manifest_path: str | Path,
    out_path: str | Path,
    *,
    workers: int = 1,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    review_path: str | Path | None = None,
    progress: bool = True,
) -> DraftSummary:
    """Draft a record for every line of a JSONL manifest and write them, in manifest order, as JSONL.

    Manifest lines are ``{"id", "image" (relative to root), "label", "source": {generator, family, origin,
    license, group?, author?}}``. Every draft is written, flagged ones included; ``{"id", "line",
    "needs_review"}`` for each flagged draft goes to ``review_path`` (default ``<out>.review.jsonl``,
    written every run, so it only ever lists this run's flags). Both files are written atomically: a
    bad manifest line or an image that fails to decode raises :class:`FakeChainError` (file, line,
    field) and leaves no partial or temporary file behind.
    """
    from tqdm.auto import tqdm

    from fakeinstruct.atomic import atomic_write

    root, manifest, out = Path(root), Path(manifest_path), Path(out_path)
    review = Path(review_path) if review_path else default_review_path(out)
    entries = _read_manifest(root, manifest)
    label_source = f"manifest {manifest.name}"
    tasks = [
        _Task(
            line=number,
            root=str(root),
            record_id=entry["id"],
            image_rel=entry["image"],
            label=entry["label"],
            source=entry["source"],
            label_source=label_source,
            thresholds=thresholds,
        )
        for number, entry in entries
    ]
    logger.info("drafting %d record(s) from %s with %d worker(s)", len(tasks), manifest, workers)
    summary = DraftSummary(out=out, review=review)
    anomalous: Counter[str] = Counter({name: 0 for name in ATTRIBUTES})
    bar = tqdm(total=len(tasks), unit="img", desc="draft", disable=not progress)
    results = _results(tasks, workers)
    try:
        with atomic_write(out, "w") as out_handle, atomic_write(review, "w") as review_handle:
            for number, result, message, where in results:
                if result is None:
                    raise FakeChainError(message, file=str(manifest), line=number, field=where)
                out_handle.write(json.dumps(result.record, ensure_ascii=False) + "\n")
                summary.records += 1
                anomalous.update(a["name"] for a in result.record["attributes"] if a["verdict"] == "anomalous")
                if result.needs_review:
                    summary.needs_review += 1
                    review_handle.write(
                        json.dumps({"id": result.record["id"], "line": number, "needs_review": result.needs_review})
                        + "\n"
                    )
                    logger.debug("%s needs review: %s", result.record["id"], "; ".join(result.needs_review))
                if not any(issue.startswith("invalid:") for issue in result.needs_review):
                    summary.valid += 1
                if result.contradicts_label:
                    summary.contradictions.append(result.record["id"])
                bar.update()
    finally:
        results.close()
        bar.close()
    summary.anomalous = dict(anomalous)
    logger.info(
        "wrote %d draft(s) to %s; %d need review (%d contradict their label) -> %s",
        summary.records,
        out,
        summary.needs_review,
        len(summary.contradictions),
        review,
    )
    return summary


def _cmd_draft(args: argparse.Namespace) -> int:
    summary = draft_manifest(
        args.root,
        args.manifest,
        args.out,
        workers=args.workers,
        review_path=args.review,
        progress=not args.no_progress,
    )
    print(
        f"{summary.records} drafts -> {summary.out} ({summary.valid} valid FakeChain records); "
        f"{summary.needs_review} need review, {len(summary.contradictions)} contradict their label -> "
        f"{summary.review}"
    )
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``fakeinstruct draft ROOT --manifest M --out OUT [--workers N]``."""
    parser = subparsers.add_parser(
        "draft",
        help="machine-draft FakeChain records from images and a label manifest",
        description="Measure every image of a manifest (noise, spectrum, JPEG grid, halos, detail, colour) and "
        "draft a FakeChain record from the measurements: per-attribute verdicts decided without the label, "
        "reasoning and conclusion leading to the manifest's label. Drafts whose evidence contradicts the label "
        "are written too and listed in the review file. Output is identical for any number of workers.",
    )
    parser.add_argument("root", metavar="ROOT", help="dataset root that the manifest's image paths are relative to")
    parser.add_argument(
        "--manifest",
        metavar="M",
        required=True,
        help='JSONL manifest, one {"id", "image", "label", "source": {generator, family, origin, license}} a line',
    )
    parser.add_argument("--out", metavar="OUT", required=True, help="where to write the drafted FakeChain JSONL")
    parser.add_argument(
        "--review", metavar="FILE", help="where to list drafts that need review (default: <out>.review.jsonl)"
    )
    parser.add_argument("--workers", metavar="N", type=_positive_int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_cmd_draft)
    return parser
