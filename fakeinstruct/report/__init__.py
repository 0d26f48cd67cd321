"""The quality report of a generated folder: measured (:mod:`.quality`), written into stats.json, the dataset card
(:mod:`.card`) and stats.png (:mod:`.figure`)."""

from __future__ import annotations

from pathlib import Path

from fakeinstruct.folder import FIGURE_FILE, FakeInstructFolder


def write_report(path: str | Path, sample_size: int = 20_000) -> dict:
    """Measure the folder and update its ``stats.json`` (key ``quality``), ``README.md`` and ``stats.png``."""
    from fakeinstruct.report.card import render_dataset_card
    from fakeinstruct.report.figure import draw
    from fakeinstruct.report.quality import measure

    folder = FakeInstructFolder.open(path)
    stats = folder.stats()
    quality = measure(folder, sample_size=sample_size)
    stats["quality"] = quality
    folder.write_stats(stats)
    folder.write_card(render_dataset_card(folder.identity | {"out": str(folder.path)}, stats))
    draw(stats, quality, folder.path / FIGURE_FILE)
    return quality
