"""Load generated FakeInstruct folders as ``datasets`` objects, with images arriving as PIL images."""

from __future__ import annotations

from pathlib import Path

from fakeinstruct.files import resolve_inside
from fakeinstruct.folder import CONFIG_FILE, FakeInstructFolder

__all__ = ["CONFIG_FILE", "load_fakeinstruct"]


def load_fakeinstruct(path: str | Path, split: str | None = None):
    """Load a ``fakeinstruct generate`` output folder (``datasets`` is needed: ``pip install .[train]``).

    Relative image paths are resolved against ``path`` (and must stay inside it); embedded images decode
    as they are. Returns a ``DatasetDict``, or a ``Dataset`` when ``split`` is given. A folder whose generation
    was interrupted is refused: it would load as if it were the whole dataset.
    """
    from datasets import Image, List, load_dataset

    folder = FakeInstructFolder.open(path)
    data_files = {name: [str(p) for p in paths] for name, paths in folder.shards(split).items()}
    ds = load_dataset("parquet" if folder.file_format == "parquet" else "json", data_files=data_files)
    if folder.image_mode == "relative" and folder.format != "llava":
        resolved = folder.path.resolve()

        def absolute(row):
            return {"images": [str(resolve_inside(resolved, p)) for p in row["images"]]}

        ds = ds.map(absolute, desc="resolve image paths").cast_column("images", List(Image()))
    return ds[split] if split else ds
