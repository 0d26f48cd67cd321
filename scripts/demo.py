#!/usr/bin/env python
"""The whole pipeline on the bundled sample, as `make demo` runs it: validate -> generate -> report.

Each stage is the command a user would run; this script only strings them together and says what happens.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from fakeinstruct.cli import main as fakeinstruct

SAMPLE = Path(__file__).resolve().parents[1] / "fakeinstruct" / "data" / "sample"
logger = logging.getLogger("demo")


def stage(title: str, argv: list[str]) -> None:
    logger.info("== %s: fakeinstruct %s", title, " ".join(argv))
    code = fakeinstruct(argv)
    if code != 0:
        sys.exit(f"demo: stage '{title}' failed with exit code {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="outputs/demo", help="where the demo writes everything")
    parser.add_argument("--workers", type=int, default=2, help="generation worker processes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.output_dir)
    chains = SAMPLE / "chains.jsonl"

    stage(
        "validate the bundled FakeChain sample",
        ["validate", str(chains), "--strict", "--quarantine", str(out / "quarantine.jsonl")],
    )
    stage("check the instruction templates", ["templates", "check"])
    data = out / "fakeinstruct"
    stage(
        "generate FakeInstruct",
        ["generate", str(chains), "--out", str(data), "--workers", str(args.workers), "--overwrite", "--seed", "0"],
    )
    stage("measure its quality", ["stats", str(data), "--strict"])
    stats = json.loads((data / "stats.json").read_text())
    logger.info("FakeInstruct: %d pairs in %s", stats["pairs"], data)
    logger.info("  per task family: %s", stats["per_task"])
    logger.info("  per split:       %s", stats["per_split"])
    logger.info("  dataset card:    %s", data / "README.md")
    logger.info("  figure:          %s", data / "stats.png")


if __name__ == "__main__":
    main()
