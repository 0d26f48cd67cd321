"""The labelled images of one split of a FakeInstruct folder: what calibration and evaluation score.

A split holds many pairs per image; scoring needs each image once with its label. Only the metadata columns and
the image reference are read (pyarrow, no ``datasets``), so this stays fast on a 2M-pair folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fakeinstruct.errors import FakeInstructError
from fakeinstruct.files import resolve_inside
from fakeinstruct.folder import FakeInstructFolder

COLUMNS = ("chain_id", "label", "generator", "group", "images")


@dataclass(frozen=True)
class LabeledImage:
    """One image of a split: its record id, label (1 = fake), generator, split group (the source photograph or
    author its record names: what intervals resample) and where its pixels are."""

    chain_id: str
    label: int
    generator: str
    path: Path | None = None
    data: bytes | None = None
    group: str = ""

    def open(self):
        """The image in 8-bit RGB, opened within the dataset image limits (embedded bytes too)."""
        from fakeinstruct.images import load_rgb

        if self.data is not None:
            return load_rgb(self.data, shown=f"the embedded image of {self.chain_id}")
        return load_rgb(self.path)


def read_rows(path: Path, file_format: str, columns: tuple[str, ...]) -> list[dict]:
    """The ``columns`` of every row of one shard (Parquet or JSONL)."""
    if file_format == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path, columns=list(columns)).to_pylist()
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                rows.append({k: row.get(k) for k in columns})
    return rows


def split_shards(folder: str | Path, split: str, formats: tuple[str, ...] = ("trl", "prompt-completion")):
    """``(identity, shard paths)`` of ``split`` in a FakeInstruct folder written in one of ``formats``."""
    opened = FakeInstructFolder.open(folder)
    if opened.format not in formats:
        raise FakeInstructError(
            f"{opened.path}: needs the {' or '.join(formats)} format; this folder is {opened.format!r}"
        )
    return opened.identity, opened.shards(split)[split]


def labeled_image(root: Path, identity: dict, row: dict) -> LabeledImage:
    """The row's image: a path confined to ``root``, or embedded bytes."""
    label = int(row["label"] == "fake")
    ref = row["images"][0]
    group = row.get("group") or row["chain_id"]
    if identity["images"] == "relative":
        return LabeledImage(row["chain_id"], label, row["generator"], resolve_inside(root, ref), group=group)
    data = ref["bytes"] if isinstance(ref, dict) else ref
    return LabeledImage(row["chain_id"], label, row["generator"], data=data, group=group)


def split_images(folder: str | Path, split: str) -> list[LabeledImage]:
    """Each image of ``split`` once, in the folder's shard order."""
    identity, paths = split_shards(folder, split)
    seen: dict[str, LabeledImage] = {}
    for path in paths:
        for row in read_rows(path, identity["file_format"], COLUMNS):
            if row["chain_id"] not in seen:
                seen[row["chain_id"]] = labeled_image(Path(folder), identity, row)
    return list(seen.values())
