#!/usr/bin/env python
"""Rebuild the bundled sample's FakeChain records: image manifest -> machine draft -> blind review -> records.

    python scripts/build_sample.py --packet outputs/sample-packet   # drafts + a blind packet for reviewers
    python scripts/build_sample.py                                   # drafts + the reviewers' decisions -> chains.jsonl

1. Each line of the image manifest (``manifest.jsonl``: label from the generation pipeline, generator, source
   photo, author, license) becomes a draft-manifest line; the split group is the photo's author.
2. ``fakeinstruct draft`` measures every image and drafts label-blind per-attribute evidence with regions and advice.
3. The blind reviewers' decisions (``review_decisions.jsonl``, keyed by the packet's review ids, the key in
   ``review_key.json``) are applied with ``fakeinstruct review``: verdicts and evidence from what they saw, their own
   real/fake call kept apart from the label, reasoning and conclusion from the fixed rule.
4. Every record is validated; the result is written atomically to ``chains.jsonl``.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fakeinstruct.drafting.draft import draft_manifest
from fakeinstruct.drafting.review import export_packet, read_decisions, review_drafts
from fakeinstruct.logs import setup_logging

SAMPLE = Path(__file__).resolve().parents[1] / "fakeinstruct" / "data" / "sample"
LABEL_SOURCE = "generation pipeline (manifest.jsonl): native camera crop or Real-ESRGAN output"
logger = logging.getLogger("scripts.build_sample")


@dataclass
class Arguments:
    sample: str = field(default=str(SAMPLE), metadata={"help": "the sample folder"})
    packet: str | None = field(
        default=None, metadata={"help": "write a blind review packet of the drafts here and stop"}
    )


def draft_manifest_lines(manifest: Path) -> list[dict]:
    """The image manifest in the drafting tool's manifest shape; crops of one author share a split group."""
    lines = []
    for raw in manifest.read_text(encoding="utf-8").splitlines():
        item = json.loads(raw)
        source = {
            "generator": item["generator"],
            "family": item["generator_family"],
            "origin": item["source_package"],
            "license": item["license"],
            "group": item["source_author"],
            "author": item["source_author"],
        }
        lines.append({"id": item["id"], "image": item["file"], "label": item["label"], "source": source})
    return lines


def main() -> None:
    import argparse

    from fakeinstruct.arguments import HelpFormatter, add_dataclass_arguments, dataclass_from_args

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    add_dataclass_arguments(parser, Arguments)
    args = dataclass_from_args(Arguments, parser.parse_args())
    setup_logging(fmt="%(message)s")
    sample = Path(args.sample)
    with tempfile.TemporaryDirectory() as tmp:
        manifest, drafts = Path(tmp) / "manifest.jsonl", Path(tmp) / "drafts.jsonl"
        manifest.write_text("".join(json.dumps(x) + "\n" for x in draft_manifest_lines(sample / "manifest.jsonl")))
        draft_manifest(sample, manifest, drafts, workers=2, progress=False)
        records = [json.loads(line) for line in drafts.read_text(encoding="utf-8").splitlines()]
        for record in records:
            record["provenance"]["label_source"] = LABEL_SOURCE
        drafts.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        if args.packet:
            key = export_packet(drafts, sample, args.packet, salt="fakechain-sample")
            logger.info("packet: %s; key: %s", args.packet, key)
            return
        key = json.loads((sample / "review_key.json").read_text(encoding="utf-8"))
        decisions = read_decisions(sample / "review_decisions.jsonl")
        summary = review_drafts(
            drafts, sample, decisions, sample / "chains.jsonl", key=key, decisions_file="review_decisions.jsonl"
        )
    if summary.missing:
        sys.exit(f"no decision for {len(summary.missing)} image(s): {', '.join(summary.missing[:10])}")
    logger.info(
        "wrote %d reviewed records to %s (%d verdicts changed by review; calls %s)",
        summary.reviewed,
        summary.out,
        summary.changed_verdicts,
        summary.calls,
    )


if __name__ == "__main__":
    main()
