#!/usr/bin/env python
"""Rebuild the bundled sample's FakeChain records: manifest -> machine draft -> reviewed records.

    python scripts/build_sample.py                  # writes fakeinstruct/data/sample/chains.jsonl
    python scripts/build_sample.py --drafts-only    # writes only the drafts, for a reviewer to read

1. Each line of the image manifest (``manifest.jsonl``: label from the generation pipeline, generator, source
   photo, license) becomes a draft-manifest line.
2. ``fakeinstruct draft`` measures every image and drafts per-attribute evidence, reasoning and a conclusion.
3. The reviewer's file (``review.jsonl``, one object per image) is merged in: what the crop shows, the trace
   that decides it when looking at the image, and corrections of attributes the draft got wrong.
4. Every merged record is validated; the result is written atomically to ``chains.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from fakeinstruct.atomic import write_text
from fakeinstruct.chain import FakeChain
from fakeinstruct.draft import draft_manifest

SAMPLE = Path(__file__).resolve().parents[1] / "fakeinstruct" / "data" / "sample"
REVIEWER = "AI agent reviewing each image for the FakeScope-Kit maintainers"
REVIEW_KEYS = {"id", "content", "decisive", "overrides", "add"}
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


def merge_review(draft: dict, review: dict) -> dict:
    """The draft with the reviewer's content note, decisive trace and attribute corrections applied."""
    unknown = set(review) - REVIEW_KEYS
    if unknown:
        raise ValueError(f"{review['id']}: unknown review keys {sorted(unknown)}")
    record = json.loads(json.dumps(draft))
    by_name = {a["name"]: a for a in record["attributes"]}
    for name, change in review.get("overrides", {}).items():
        attribute = by_name[name]
        attribute.update(change)
        if attribute["verdict"] == "natural":
            attribute.pop("severity", None)
    for extra in review.get("add", []):
        if extra["name"] in by_name:
            raise ValueError(f"{review['id']}: attribute {extra['name']} is already drafted; override it instead")
        record["attributes"].append(extra)
    steps = [f"The crop shows {review['content'].rstrip('.')}.", *record["reasoning"]]
    steps.insert(-1, f"Looking at the image itself: {review['decisive'].rstrip('.')}.")
    record["reasoning"] = steps
    reviewed = ["reasoning"] + (["attributes"] if review.get("overrides") or review.get("add") else [])
    record["provenance"] = {
        **record["provenance"],
        "annotation": "machine",
        "label_source": "generation pipeline (manifest.jsonl): native camera crop or Real-ESRGAN output",
        "reviewed_by": REVIEWER,
        "reviewed_fields": reviewed,
    }
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="the sample folder")
    parser.add_argument("--drafts-only", type=Path, metavar="OUT", help="write the drafts to OUT and stop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "draft_manifest.jsonl"
        manifest.write_text(
            "".join(json.dumps(x) + "\n" for x in draft_manifest_lines(args.sample / "manifest.jsonl"))
        )
        drafts_path = args.drafts_only or Path(tmp) / "drafts.jsonl"
        draft_manifest(args.sample, manifest, drafts_path, workers=2, progress=False)
        if args.drafts_only:
            return
        drafts = [json.loads(line) for line in drafts_path.read_text().splitlines()]
    reviews = {r["id"]: r for r in map(json.loads, (args.sample / "review.jsonl").read_text().splitlines())}
    missing = [d["id"] for d in drafts if d["id"] not in reviews]
    if missing:
        sys.exit(f"no review for {len(missing)} image(s): {', '.join(missing[:10])}")
    records = []
    for draft in drafts:
        record = merge_review(draft, reviews[draft["id"]])
        FakeChain.model_validate(record)
        records.append(record)
    write_text(args.sample / "chains.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    logger.info("wrote %d reviewed records to %s", len(records), args.sample / "chains.jsonl")


if __name__ == "__main__":
    main()
