"""``fakeinstruct draft``: machine drafts of FakeChain records from images and a label manifest."""

from __future__ import annotations

import argparse

from fakeinstruct.arguments import HelpFormatter, both_spellings


def _cmd_draft(args: argparse.Namespace) -> int:
    from fakeinstruct.drafting.draft import draft_manifest

    summary = draft_manifest(
        args.root,
        args.manifest,
        args.out,
        workers=args.workers,
        review_path=args.review,
        progress=args.progress,
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


def add_commands(sub) -> None:
    parser = sub.add_parser(
        "draft",
        help="machine-draft FakeChain records from images and a label manifest",
        description="Measure every image of a manifest (noise, spectrum, JPEG grid, halos, detail, colour) and "
        "draft a FakeChain record from the measurements: per-attribute verdicts decided without the label, "
        "reasoning and conclusion leading to the manifest's label. Drafts whose evidence contradicts the label "
        "are written too and listed in the review file. Output is identical for any number of workers.",
        formatter_class=HelpFormatter,
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
    parser.add_argument("--workers", metavar="N", type=_positive_int, default=1, help="worker processes")
    parser.add_argument(
        *both_spellings("--no_progress"), dest="progress", action="store_false", help="no progress bar"
    )
    parser.set_defaults(func=_cmd_draft)
