"""``fakeinstruct import``: a public forensic dataset, as downloaded, -> FakeChain JSONL."""

from __future__ import annotations

import sys

from fakeinstruct.arguments import HelpFormatter, add_dataclass_arguments, dataclass_from_args

EXAMPLES = """\
examples:
  fakeinstruct import fakeclue /data/FakeClue --out /data/FakeClue/chains.jsonl --workers 8
  fakeinstruct import loki /data/LOKI --out /data/LOKI/chains.jsonl
  fakeinstruct import fakebench /data/FakeBench --out /data/FakeBench/chains.jsonl --missing-evidence error
  fakeinstruct import folders /data/GenImage --out /data/GenImage/chains.jsonl --license "see GenImage's terms"

then, keeping the dataset's own test split (validation carved from its train split):
  fakeinstruct generate /data/FakeClue/chains.jsonl --out /data/fakeinstruct --split-from source.origin
"""


def _cmd_import(args) -> int:
    from pathlib import Path

    from fakeinstruct.importers import ImportConfig, import_dataset
    from fakeinstruct.importers.run import summary_path

    config = dataclass_from_args(ImportConfig, args)
    report = import_dataset(config)
    for err in report.errors:
        print(err, file=sys.stderr)
    splits = ", ".join(f"{k} {v}" for k, v in sorted(report.per_split.items()))
    labels = ", ".join(f"{k} {v}" for k, v in sorted(report.per_label.items()))
    print(
        f"{config.format} {config.root}: {report.records} records -> {report.out} ({report.rejected} rejected, "
        f"{report.drafted} drafted from their images); per split: {splits or '-'}; per label: {labels or '-'}; "
        f"summary in {summary_path(report.out)}"
    )
    if report.undecided:
        print(f"  {report.undecided} records: their evidence does not decide their label (fixed rule)")
    if Path(config.out).resolve().parent != Path(config.root).resolve():
        print(f"  image paths are relative to {config.root}: give fakeinstruct validate/generate --root {config.root}")
    if report.records == 0 or (config.strict and report.rejected):
        return 1
    return 0


def add_commands(sub) -> None:
    from fakeinstruct.importers import ImportConfig

    p = sub.add_parser(
        "import",
        help="import a public dataset (FakeClue, LOKI, FakeBench, folder trees) as FakeChain records",
        description="Read a dataset in its published layout and write one FakeChain record per image: labels, the "
        "dataset's split and category (source.origin = DATASET/SPLIT/CATEGORY), its license, and evidence mapped "
        "from its own text onto the taxonomy (phrases.yaml) or drafted from the image. Each record that cannot be "
        "imported is reported as file:index: field: message and the rest are imported, as validate does; exits "
        "non-zero only with --strict or when nothing was imported.",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    add_dataclass_arguments(p, ImportConfig)
    p.set_defaults(func=_cmd_import)
