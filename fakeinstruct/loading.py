"""Load generated FakeInstruct folders as ``datasets`` objects, with images arriving as PIL images."""

from __future__ import annotations

import json
from pathlib import Path

from fakeinstruct.errors import FakeInstructError
from fakeinstruct.images import resolve_inside

CONFIG_FILE = "fakeinstruct_config.json"
MANIFEST_FILE = "manifest.json"


def load_fakeinstruct(path: str | Path, split: str | None = None):
    """Load a ``fakeinstruct generate`` output folder (``datasets`` is needed: ``pip install .[train]``).

    Relative image paths are resolved against ``path`` (and must stay inside it); embedded images decode
    as they are. Returns a ``DatasetDict``, or a ``Dataset`` when ``split`` is given.
    """
    from datasets import Image, List, load_dataset

    root = Path(path)
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise FakeInstructError(f"{root} is not a FakeInstruct folder: {CONFIG_FILE} is missing")
    config = json.loads(config_path.read_text(encoding="utf-8"))["identity"]
    manifest = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
    ext = config["file_format"]
    data_files: dict[str, list[str]] = {}
    for name, shard in sorted(manifest["shards"].items()):
        shard_split = name.split("/", 1)[0]
        if split in (None, shard_split):
            data_files.setdefault(shard_split, []).append(str(root / shard["path"]))
    if not data_files:
        raise FakeInstructError(f"no shards for split {split!r} in {root}")
    ds = load_dataset("parquet" if ext == "parquet" else "json", data_files=data_files)
    if config["images"] == "relative" and config["format"] != "llava":
        resolved = root.resolve()

        def absolute(row):
            return {"images": [str(resolve_inside(resolved, p)) for p in row["images"]]}

        ds = ds.map(absolute, desc="resolve image paths").cast_column("images", List(Image()))
    return ds[split] if split else ds
