"""Write the quality report into a generated folder: stats.json, the dataset card and stats.png."""

from __future__ import annotations

import json
from pathlib import Path

from fakeinstruct.errors import FakeInstructError
from fakeinstruct.files import write_text
from fakeinstruct.report.card import render_dataset_card
from fakeinstruct.report.quality import measure


def write_report(folder: str | Path, sample_size: int = 20_000) -> dict:
    """Measure ``folder`` and update its ``stats.json`` (key ``quality``), ``README.md`` and ``stats.png``."""
    folder = Path(folder)
    for name in ("stats.json", "manifest.json", "fakeinstruct_config.json"):
        if not (folder / name).is_file():
            raise FakeInstructError(f"{folder} is not a finished FakeInstruct folder: {name} is missing")
    stats = json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    identity = json.loads((folder / "fakeinstruct_config.json").read_text(encoding="utf-8"))["identity"]
    quality = measure(folder, sample_size=sample_size)
    stats["quality"] = quality
    write_text(folder / "stats.json", json.dumps(stats, indent=2) + "\n")
    write_text(folder / "README.md", render_dataset_card(identity | {"out": str(folder)}, stats))
    from fakeinstruct.report.figure import draw

    draw(stats, quality, folder / "stats.png")
    return quality
