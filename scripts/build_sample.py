#!/usr/bin/env python
"""Rebuild the bundled sample's FakeChain records: manifest -> machine draft -> reviewed records.

    python scripts/build_sample.py                  # writes fakeinstruct/data/sample/chains.jsonl
    python scripts/build_sample.py --drafts-only    # writes only the drafts, for a reviewer to read

1. Each line of the image manifest (``manifest.jsonl``: label from the generation pipeline, generator, source
   photo, license) becomes a draft-manifest line.
2. ``fakeinstruct draft`` measures every image and drafts per-attribute evidence, reasoning and a conclusion.
3. The reviewer's file (``review.jsonl``, one object per image) is applied: what the crop shows, the trace
   that decides it when looking at the image, a sentence per attribute on what is seen (``visual``; it becomes
   the attribute's evidence, and the drafted sentence its ``measurement``), and corrections of attributes the
   draft got wrong. The reasoning
   and the conclusion are then written again from the corrected attributes, so they never contradict them.
4. Every record is validated; the result is written atomically to ``chains.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from fakeinstruct.chain import FakeChain
from fakeinstruct.drafting.draft import draft_from_findings, draft_manifest
from fakeinstruct.drafting.evidence import ATTRIBUTES, DEFAULT_THRESHOLDS, DRAFTERS, Finding
from fakeinstruct.drafting.measure import measure_image
from fakeinstruct.files import write_text

SAMPLE = Path(__file__).resolve().parents[1] / "fakeinstruct" / "data" / "sample"
REVIEWER = "AI agent reviewing each image for the FakeScope-Kit maintainers"
REVIEW_KEYS = {"id", "content", "decisive", "overrides", "add", "visual"}
LABEL_SOURCE = "generation pipeline (manifest.jsonl): native camera crop or Real-ESRGAN output"
logger = logging.getLogger("build_sample")


def draft_manifest_lines(manifest: Path) -> list[dict]:
    """The image manifest in the drafting tool's manifest shape."""
    lines = []
    for raw in manifest.read_text(encoding="utf-8").splitlines():
        item = json.loads(raw)
        source = {
            "generator": item["generator"],
            "family": item["generator_family"],
            "origin": item["source_package"],
            "license": item["license"],
            "group": item["source_photo"],
            "author": item["source_author"],
        }
        lines.append({"id": item["id"], "image": item["file"], "label": item["label"], "source": source})
    return lines


def _clause(evidence: str) -> str:
    """A reviewer's evidence sentence as the clause after "The texture looks anomalous: ..."."""
    text = evidence.strip().rstrip(".")
    return text[0].lower() + text[1:] if text[1:2].islower() else text


def reviewed_findings(findings: list[Finding], review: dict) -> tuple[list[Finding], dict[str, str]]:
    """The drafted findings with the reviewer's corrections and additions applied.

    Where the reviewer described an attribute (``visual``), that sentence becomes its evidence and the drafted,
    measured sentence is kept as the attribute's ``measurement``; both are returned.
    """
    unknown = set(review) - REVIEW_KEYS
    if unknown:
        raise ValueError(f"{review['id']}: unknown review keys {sorted(unknown)}")
    by_name = {f.name: f for f in findings}
    measurements: dict[str, str] = {}
    overrides = review.get("overrides", {})
    for name, sentence in review.get("visual", {}).items():
        if "evidence" in overrides.get(name, {}):
            continue  # the reviewer already rewrote this attribute's evidence from what they saw
        finding = by_name[name]
        measurements[name] = finding.evidence
        finding.evidence = sentence.strip()
        finding.why = finding.benign = _clause(sentence)
    for name, change in overrides.items():
        finding = by_name[name]
        finding.verdict = change.get("verdict", finding.verdict)
        finding.evidence = change.get("evidence", finding.evidence)
        finding.severity = change.get("severity", finding.severity) if finding.anomalous else None
        if "evidence" in change:
            finding.why = finding.benign = _clause(change["evidence"])
    for extra in review.get("add", []):
        if extra["name"] in by_name:
            raise ValueError(f"{review['id']}: attribute {extra['name']} is already drafted; override it instead")
        clause = _clause(extra["evidence"])
        finding = Finding(extra["name"], extra["verdict"], extra.get("severity"), extra["evidence"], clause, clause)
        by_name[finding.name] = finding
    return list(by_name.values()), measurements


def reviewed_record(sample: Path, entry: dict, review: dict) -> dict:
    """Draft ``entry`` again from its measurements, apply ``review``, and write reasoning that follows it."""
    measurements = measure_image(sample / entry["image"])
    drafted = [DRAFTERS[n](measurements, DEFAULT_THRESHOLDS) for n in ATTRIBUTES]
    findings, measured = reviewed_findings(drafted, review)
    result = draft_from_findings(
        findings,
        measurements,
        record_id=entry["id"],
        image_rel=entry["image"],
        label=entry["label"],
        source=entry["source"],
        label_source=LABEL_SOURCE,
    )
    if result.needs_review:
        raise ValueError(f"{entry['id']}: still needs review after the reviewer's corrections: {result.needs_review}")
    record = result.record
    for attribute in record["attributes"]:
        if attribute["name"] in measured:
            attribute["measurement"] = measured[attribute["name"]]
    steps = [f"The crop shows {review['content'].rstrip('.')}.", *record["reasoning"]]
    steps.insert(-1, f"Looking at the image itself: {review['decisive'].rstrip('.')}.")
    record["reasoning"] = steps
    corrected = bool(review.get("overrides") or review.get("add") or review.get("visual"))
    record["provenance"] |= {
        "reviewed_by": REVIEWER,
        "reviewed_fields": ["attributes", "reasoning", "conclusion"] if corrected else ["reasoning"],
    }
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="the sample folder")
    parser.add_argument("--drafts-only", type=Path, metavar="OUT", help="write the drafts to OUT and stop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    entries = draft_manifest_lines(args.sample / "manifest.jsonl")
    if args.drafts_only:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = Path(tmp) / "draft_manifest.jsonl"
            manifest.write_text("".join(json.dumps(x) + "\n" for x in entries))
            draft_manifest(args.sample, manifest, args.drafts_only, workers=2, progress=False)
        return
    reviews = {r["id"]: r for r in map(json.loads, (args.sample / "review.jsonl").read_text().splitlines())}
    missing = [e["id"] for e in entries if e["id"] not in reviews]
    if missing:
        sys.exit(f"no review for {len(missing)} image(s): {', '.join(missing[:10])}")
    records = []
    for entry in entries:
        record = reviewed_record(args.sample, entry, reviews[entry["id"]])
        FakeChain.model_validate(record)
        records.append(record)
    write_text(args.sample / "chains.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    logger.info("wrote %d reviewed records to %s", len(records), args.sample / "chains.jsonl")


if __name__ == "__main__":
    main()
