"""Shared fixtures: small FakeChain datasets written to tmp dirs, with real PNG files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakeinstruct.checks import PROBES

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "fakeinstruct" / "data" / "sample"


def write_png(path: Path, seed: int, size: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def make_records(n: int, groups: int | None = None) -> list[dict]:
    """``n`` valid records cycling through the probe records, ``groups`` split groups (default: one each)."""
    records = []
    for i in range(n):
        rec = copy.deepcopy(PROBES[i % len(PROBES)])
        rec["id"] = f"rec-{i:04d}"
        rec["image"] = f"images/img-{i:04d}.png"
        rec["source"]["group"] = f"photo-{i % groups if groups else i}"
        records.append(rec)
    return records


def write_dataset(root: Path, records: list[dict], extra_lines: list[str] = ()) -> Path:
    """Write images for ``records`` and a chains.jsonl (records, then ``extra_lines`` verbatim)."""
    root.mkdir(parents=True, exist_ok=True)
    for i, rec in enumerate(records):
        if not (root / rec["image"]).exists():
            write_png(root / rec["image"], seed=i)
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    path = root / "chains.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def dataset(tmp_path) -> Path:
    """40 valid records in 12 groups, with their images; returns the chains file."""
    return write_dataset(tmp_path / "data", make_records(40, groups=12))
