"""Machine drafts of FakeChain records: measure an image, then write per-attribute evidence from the numbers.

This is the machine half of FakeChain's human-machine annotation: a reviewer checks each draft against the
image instead of writing it. The six measured attributes (texture, edges, clarity, noise, compression,
colour) get their verdict **label-blind**, from :mod:`fakeinstruct.drafting.measure` and the global
:class:`Thresholds`; only the reasoning and the conclusion use the label, which comes from the manifest
(ground truth) and never from the measurements.

When the verdicts do not point to the label by the fixed rule of :mod:`fakeinstruct.chain.verdict`, nothing is
invented to make them agree: the conclusion says the evidence is inconclusive, ``provenance.evidence_decides_label``
is false, and :class:`DraftResult` lists the contradiction in ``needs_review`` for the reviewer.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fakeinstruct import __version__
from fakeinstruct.drafting.evidence import ATTRIBUTES, DEFAULT_THRESHOLDS, DRAFTERS, Finding, Limit, Thresholds
from fakeinstruct.drafting.reasoning import reason
from fakeinstruct.errors import FakeChainError

if TYPE_CHECKING:
    from fakeinstruct.drafting.measure import Measurements

logger = logging.getLogger(__name__)

DRAFTED_BY = f"fakeinstruct draft {__version__} (measure.py)"
MACHINE_FIELDS = ["attributes", "reasoning", "conclusion", "enhancement"]


@dataclass
class DraftResult:
    """A drafted record and what a reviewer must look at before it is used.

    ``record`` is a FakeChain-shaped dict. ``needs_review`` lists problems in words, one per entry; it is
    empty for a draft that validates and whose evidence agrees with its label. ``contradicts_label`` is
    true when the verdicts point away from the label by the fixed rule.
    """

    record: dict[str, Any]
    needs_review: list[str]
    contradicts_label: bool
    measurements: Measurements


def draft_from_measurements(
    measurements: Measurements, *, thresholds: Thresholds = DEFAULT_THRESHOLDS, rgb=None, **record: Any
) -> DraftResult:
    """Draft a record from measurements already taken; ``record`` as for :func:`draft_from_findings`. With the
    image's pixels (``rgb``), anomalous findings get the region where they are strongest."""
    findings = draft_findings(measurements, thresholds, rgb)
    return draft_from_findings(findings, measurements, thresholds=thresholds, **record)


def draft_findings(measurements: Measurements, thresholds: Thresholds = DEFAULT_THRESHOLDS, rgb=None) -> list[Finding]:
    """The six label-blind findings, anomalous ones located in ``rgb`` when it is given."""
    from fakeinstruct.drafting.regions import region

    findings = [DRAFTERS[name](measurements, thresholds) for name in ATTRIBUTES]
    if rgb is None:
        return [f.located(None) for f in findings]
    return [f.located(region(rgb, f.name) if f.anomalous else None) for f in findings]


def draft_from_findings(
    findings: list[Finding],
    measurements: Measurements,
    *,
    record_id: str,
    image_rel: str,
    label: str,
    source: dict[str, Any],
    label_source: str = "manifest",
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> DraftResult:
    """Write the record for ``findings`` (drafted, or drafted and then corrected by a reviewer). A fake gets
    enhancement advice from its anomalous findings, strongest first: what would have to change in this image."""
    from pydantic import ValidationError

    from fakeinstruct.chain import SCHEMA_VERSION, FakeChain

    reasoning, conclusion, contradicts = reason(findings, label, label_source)
    attributes = []
    for f in findings:
        attribute = {"name": f.name, "verdict": f.verdict, "evidence": f.evidence}
        if f.severity is not None:
            attribute["severity"] = f.severity
        if f.region is not None:
            attribute["region"] = list(f.region)
        attributes.append(attribute)
    ranked = sorted((f for f in findings if f.anomalous and f.advice), key=lambda f: -(f.severity or 0.0))
    enhancement = [f.advice for f in ranked] if label == "fake" else []
    record = {
        "schema_version": SCHEMA_VERSION,
        "id": record_id,
        "image": image_rel,
        "label": label,
        "source": {k: v for k, v in source.items() if v is not None},
        "attributes": attributes,
        "reasoning": reasoning,
        "conclusion": conclusion,
        "enhancement": enhancement,
        "provenance": {
            "annotation": "machine",
            "label_source": label_source,
            "drafted_by": DRAFTED_BY,
            "machine_fields": list(MACHINE_FIELDS),
            "evidence_decides_label": not contradicts,
        },
    }
    issues = []
    anomalous = [f.name for f in findings if f.anomalous]
    if contradicts:
        points_to = "real" if label == "fake" else "fake"
        issues.append(
            f"contradiction: labelled {label}, but the verdicts point to {points_to} ({len(anomalous)} anomalous): "
            "the conclusion says the evidence is inconclusive"
        )
    try:
        FakeChain.model_validate(record)
    except ValidationError as err:
        for problem in err.errors(include_url=False):
            where = ".".join(str(part) for part in problem["loc"]) or "record"
            issues.append(f"invalid: {where}: {problem['msg'].removeprefix('Value error, ')}")
    return DraftResult(record=record, needs_review=issues, contradicts_label=contradicts, measurements=measurements)


def draft_record(image_path: str | Path, **record: Any) -> DraftResult:
    """Measure ``image_path`` and draft its FakeChain record (keywords as for :func:`draft_from_findings`).

    Returns a :class:`DraftResult`: ``record`` is the FakeChain-shaped dict (``image_rel`` is the path it
    records, ``image_path`` the file that is measured), ``needs_review`` what a reviewer must settle first.
    The verdicts never depend on ``label``; a record whose evidence contradicts it comes back all the same,
    flagged, and (for a fake without anomalous evidence) not valid as a FakeChain until a reviewer fixes it.
    """
    from fakeinstruct.drafting.measure import decode_rgb, measure_array

    rgb = decode_rgb(image_path)
    return draft_from_measurements(measure_array(rgb), rgb=rgb, **record)


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
    from fakeinstruct.files import resolve_inside

    entries, seen = [], {}
    with open(manifest, encoding="utf-8-sig") as handle:  # text mode: \n, \r\n and \r end lines
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
    from fakeinstruct.files import resolve_inside
    from fakeinstruct.images import check_image

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

    from fakeinstruct.files import atomic_write

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


__all__ = [
    "DEFAULT_THRESHOLDS",
    "DRAFTED_BY",
    "DraftResult",
    "Limit",
    "Thresholds",
    "draft_manifest",
    "draft_record",
]
