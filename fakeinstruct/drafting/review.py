"""Blind review of machine drafts: the reviewer sees the image and the draft's evidence, never the label or source.

A reviewer's work on one draft is a :class:`Decision`: per attribute, the verdict, the evidence sentence (what is
seen in this image), the severity and the region they settle on; a one-line description of the image; flags; and
their own real/fake call. Decisions come from the terminal flow of ``fakeinstruct review`` or from a decisions file
(a review packet, :func:`export_packet`, lets reviewers work elsewhere without ever seeing a label). :func:`finalize`
then writes the record: the reviewer's verdicts and evidence (the machine's sentence kept as the ``measurement``),
reasoning and conclusion from the fixed rule of :mod:`fakeinstruct.chain.verdict`, the label from provenance, and the
reviewer's call kept apart from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

from fakeinstruct.errors import FakeChainError

logger = logging.getLogger(__name__)

CALLS = ("real", "fake", "unsure")
# What a reviewer is shown of each attribute; the label, the source, the reasoning and the conclusion (which name the
# label), the enhancement advice (written for fakes only) and the provenance are never shown.
BLIND_ATTRIBUTE_KEYS = ("name", "verdict", "evidence", "measurement", "severity", "region")
Sentence = Annotated[str, Field(min_length=1, max_length=4000)]


class AttributeDecision(BaseModel):
    """What the reviewer settled for one attribute; unset fields keep the draft's value."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["anomalous", "natural"] | None = None
    evidence: Sentence | None = Field(default=None, description="What is seen in this image, in a sentence or two.")
    severity: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1)] | None = None
    region: tuple[StrictInt, StrictInt, StrictInt, StrictInt] | None = None


class Decision(BaseModel):
    """One reviewed draft. ``id`` is the record id or the packet's ``review_id``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    review_id: str | None = None
    call: Literal["real", "fake", "unsure"] = Field(description="The reviewer's own call, made without the label.")
    reviewer: Sentence
    summary: Sentence | None = Field(default=None, description="What the image shows, in one sentence.")
    attributes: dict[str, AttributeDecision] = Field(default_factory=dict)
    flags: list[Sentence] = Field(default_factory=list)
    enhancement: list[Sentence] | None = Field(default=None, description="Advice replacing the drafted advice.")


@dataclass
class ReviewSummary:
    out: Path
    reviewed: int = 0
    missing: list[str] = field(default_factory=list)
    changed_verdicts: int = 0
    calls: dict[str, int] = field(default_factory=dict)


def review_id(record_id: str, salt: str) -> str:
    """An opaque name for a record in a packet: nothing of its id (which may name its label) shows through."""
    return "r-" + hashlib.sha256(f"{salt}\x1f{record_id}".encode()).hexdigest()[:12]


def blind_view(record: dict) -> dict:
    """What a reviewer may see of a draft: its attributes, nothing that names the label. Not even the drafted
    enhancement advice: it is written for fakes only, so its presence would give the label away."""
    return {
        "attributes": [{k: a[k] for k in BLIND_ATTRIBUTE_KEYS if a.get(k) is not None} for a in record["attributes"]]
    }


def _lines(path: str | Path):
    """(line number, text) of every non-blank line of a JSONL file (a UTF-8 BOM is skipped)."""
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def read_drafts(path: str | Path) -> list[tuple[int, dict]]:
    """(line, record) for every draft; a line that is not a JSON object is an error naming it."""
    out = []
    for number, line in _lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise FakeChainError(f"invalid JSON: {err.msg}", file=str(path), line=number) from err
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise FakeChainError("expected a FakeChain draft (a JSON object with an id)", file=str(path), line=number)
        out.append((number, record))
    return out


def read_decisions(path: str | Path) -> list[tuple[int, Decision]]:
    """Every decision of a JSONL file; a bad one is an error naming the file, line and field."""
    out = []
    for number, line in _lines(path):
        try:
            decision = Decision.model_validate_json(line)
        except ValidationError as err:
            problem = err.errors(include_url=False)[0]
            where = ".".join(str(p) for p in problem["loc"]) or None
            raise FakeChainError(problem["msg"], file=str(path), line=number, field=where) from None
        if (decision.id is None) == (decision.review_id is None):
            raise FakeChainError("give exactly one of id and review_id", file=str(path), line=number, field="id")
        out.append((number, decision))
    return out


def export_packet(drafts: str | Path, root: str | Path, packet: str | Path, *, salt: str | None = None) -> Path:
    """Write a blind review packet: each draft's image under an opaque name and its blind view, in an order that
    says nothing about the file's. The key from review ids to record ids goes beside the packet, not in it."""
    from fakeinstruct.files import resolve_inside, write_text

    packet = Path(packet)
    salt = salt or hashlib.sha256(str(Path(drafts).resolve()).encode()).hexdigest()[:16]
    items, key = [], {}
    (packet / "images").mkdir(parents=True, exist_ok=True)
    for _, record in read_drafts(drafts):
        rid = review_id(record["id"], salt)
        source = resolve_inside(Path(root), record["image"])
        image = f"images/{rid}{source.suffix.lower()}"
        shutil.copyfile(source, packet / image)
        items.append({"review_id": rid, "image": image, **blind_view(record)})
        key[rid] = record["id"]
    items.sort(key=lambda item: item["review_id"])
    write_text(packet / "items.jsonl", "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items))
    write_text(packet / "README.md", PACKET_README)
    key_path = packet.with_name(packet.name + ".key.json")
    write_text(key_path, json.dumps(key, indent=1) + "\n")
    logger.info("wrote a blind packet of %d drafts to %s (key: %s)", len(items), packet, key_path)
    return key_path


PACKET_README = """\
# Blind review packet

Each line of `items.jsonl` is one image (`image`, under `images/`) and the machine's draft of its evidence: per
attribute a verdict (`natural` or `anomalous`), a sentence, the measurement behind it and, for anomalous ones, a
severity (0-1) and a region `[x0, y0, x1, y1]`. Nothing here says whether the image is real or generated: judge
what you see.

For every item, write one line of decisions JSONL:

    {"review_id": "r-...", "reviewer": "your name", "call": "real" | "fake" | "unsure",
     "summary": "what the image shows, in one sentence",
     "attributes": {"texture": {"verdict": "anomalous", "evidence": "what you see", "severity": 0.6,
                                "region": [0, 0, 40, 40]}},
     "flags": ["anything a maintainer should look at"]}

Change only what you disagree with: an attribute left out keeps the draft's verdict and sentence. Write evidence
as what is visible in this image (the sentence replaces the draft's; its measurement is kept). Make your `call`
from the image and the evidence alone. Apply the file with
`fakeinstruct review DRAFTS --root ROOT --decisions FILE --key PACKET.key.json --out REVIEWED.jsonl`.
"""


def _clause(evidence: str) -> str:
    """A reviewer's sentence as the clause after "The texture looks anomalous: ..."."""
    text = evidence.strip().rstrip(".")
    return text if text[1:2].isupper() else text[0].lower() + text[1:]  # "JPEG blocks" keeps its capital


def _findings(record: dict, decision: Decision, machine: dict) -> tuple[list, dict[str, str]]:
    """The reviewed findings of a draft, and the machine sentences kept as measurements (by attribute)."""
    from fakeinstruct.chain.taxonomy import default_taxonomy
    from fakeinstruct.drafting.evidence import Finding

    taxonomy = default_taxonomy()
    drafted = {a["name"]: a for a in record["attributes"]}
    unknown = sorted(set(decision.attributes) - set(drafted) - set(taxonomy.names))
    if unknown:
        raise FakeChainError(f"unknown attribute(s) {', '.join(unknown)}", field="attributes")
    findings, measured = [], {}
    for name in [*drafted, *(n for n in decision.attributes if n not in drafted)]:
        draft = drafted.get(name, {})
        change = decision.attributes.get(name, AttributeDecision())
        verdict = change.verdict or draft.get("verdict")
        evidence = change.evidence or draft.get("evidence")
        if verdict is None or evidence is None:
            raise FakeChainError(f"attribute {name!r} is not in the draft: give its verdict and evidence", field=name)
        if change.evidence and draft.get("evidence"):
            measured[name] = draft.get("measurement") or draft["evidence"]
        elif draft.get("measurement"):
            measured[name] = draft["measurement"]
        kept = verdict == draft.get("verdict")
        severity = change.severity if change.severity is not None else (draft.get("severity") if kept else None)
        region = change.region or (draft.get("region") if kept else None)
        if verdict == "natural":
            severity = region = None
        same = machine.get(name)
        if same is not None and same.verdict == verdict and not change.evidence:
            why, benign, advice = same.why, same.benign, same.advice
        else:
            why = benign = _clause(evidence)
            fix = taxonomy[name].advice.rstrip(".") if name in taxonomy else ""
            advice = f"{fix}, where {why}." if fix else ""
        region = list(region) if region else None
        findings.append(Finding(name, verdict, severity, evidence, why, benign, advice, region))
    return findings, measured


def finalize(record: dict, decision: Decision, root: str | Path) -> dict:
    """The reviewed FakeChain record of a draft: see the module docstring. Raises :class:`FakeChainError`."""
    from fakeinstruct.chain import FakeChain
    from fakeinstruct.drafting.draft import draft_findings, draft_from_findings
    from fakeinstruct.drafting.measure import decode_rgb, measure_array
    from fakeinstruct.files import resolve_inside

    rgb = decode_rgb(resolve_inside(Path(root), record["image"]))
    measurements = measure_array(rgb)
    machine = {f.name: f for f in draft_findings(measurements, rgb=rgb)}
    findings, measured = _findings(record, decision, machine)
    provenance = record.get("provenance", {})
    result = draft_from_findings(
        findings,
        measurements,
        record_id=record["id"],
        image_rel=record["image"],
        label=record["label"],
        source=record["source"],
        label_source=provenance.get("label_source", "manifest"),
    )
    final = result.record
    for attribute in final["attributes"]:
        if attribute["name"] in measured:
            attribute["measurement"] = measured[attribute["name"]]
    if decision.summary:
        final["reasoning"].insert(0, f"The image shows {_clause(decision.summary)}.")
    if decision.enhancement is not None:
        final["enhancement"] = list(decision.enhancement) if record["label"] == "fake" else []
    before = {a["name"]: a.get("verdict") for a in record["attributes"]}
    changed = [a["name"] for a in final["attributes"] if before.get(a["name"]) != a["verdict"]]
    edited = changed or any(c.evidence for c in decision.attributes.values())
    final["provenance"] = {
        **final["provenance"],
        "annotation": "human+machine",
        "drafted_by": provenance.get("drafted_by", final["provenance"]["drafted_by"]),
        "reviewed_by": decision.reviewer,
        "reviewed_fields": ["attributes", "reasoning", "conclusion", "enhancement"] if edited else ["attributes"],
        "blind": True,
        "reviewer_call": decision.call,
        "review_flags": list(decision.flags),
    }
    try:
        FakeChain.model_validate(final)
    except ValidationError as err:
        problem = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in problem["loc"]) or None
        raise FakeChainError(problem["msg"].removeprefix("Value error, "), field=where) from None
    return final


def review_drafts(
    drafts: str | Path,
    root: str | Path,
    decisions: list[tuple[int, Decision]],
    out: str | Path,
    *,
    key: dict[str, str] | None = None,
    decisions_file: str = "decisions",
) -> ReviewSummary:
    """Finalize every draft that has a decision and write the records, in the drafts' order, atomically. Drafts
    without a decision are listed in the summary (and left out); a decision for no draft is an error."""
    from fakeinstruct.files import atomic_write

    by_id: dict[str, tuple[int, Decision]] = {}
    for number, decision in decisions:
        rid = decision.id
        if rid is None:
            if not key or decision.review_id not in key:
                raise FakeChainError(
                    f"review_id {decision.review_id!r} is not in the packet's key", file=decisions_file, line=number
                )
            rid = key[decision.review_id]
        by_id[rid] = (number, decision)
    summary = ReviewSummary(out=Path(out))
    drafted = read_drafts(drafts)
    stray = sorted(set(by_id) - {record["id"] for _, record in drafted})
    if stray:
        raise FakeChainError(f"decision for no draft: {stray[0]}", file=decisions_file, line=by_id[stray[0]][0])
    with atomic_write(out, "w") as handle:
        for _, record in drafted:
            if record["id"] not in by_id:
                summary.missing.append(record["id"])
                continue
            number, decision = by_id[record["id"]]
            try:
                final = finalize(record, decision, root)
            except FakeChainError as err:
                raise FakeChainError(err.message, file=decisions_file, line=number, field=err.field) from err
            handle.write(json.dumps(final, ensure_ascii=False) + "\n")
            summary.reviewed += 1
            summary.calls[decision.call] = summary.calls.get(decision.call, 0) + 1
            before = {a["name"]: a["verdict"] for a in record["attributes"]}
            summary.changed_verdicts += sum(before.get(a["name"]) != a["verdict"] for a in final["attributes"])
    return summary
