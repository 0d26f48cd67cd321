"""Which images a ``fakescope detect`` run scores: files, folders, globs, image lists and ``datasets`` datasets.

:func:`collect` turns the command's inputs into one ordered list of :class:`ImageRef`, each with the ``key`` the
output's ``path`` column holds (and that a resumed run skips by):

- an image file: its path as given;
- a folder: every file below it (recursively unless ``recursive=False``) whose suffix is in ``extensions``, sorted;
- a glob (``"photos/**/*.jpg"``, quoted so the shell leaves it): its matches, sorted, folders walked as above;
- a list, ``.csv``/``.jsonl`` (the ``image_column``, else the first of image/path/file/filename) or ``.txt`` (one path a
  line): its paths in order, relative ones taken from the list's folder;
- a ``datasets`` folder (``save_to_disk``: ``dataset_dict.json`` or ``state.json``) or a Hub dataset
  (``hf://datasets/owner/name[@revision]``): every row of ``split`` (all splits when None), its image from the
  ``image_column`` (else the first ``Image`` column); the key is ``<source>:<split>/<row>``.

An input that names nothing is kept as one ref with its ``error``: it is reported like an unreadable image. A key
listed twice is scored once (at its first place). Images are decoded later, in :meth:`Collection.load`, inside the
dataset image limits.
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
LIST_SUFFIXES = (".csv", ".jsonl", ".txt")
PATH_COLUMNS = ("image", "path", "file", "filename")
HUB_PREFIX = "hf://datasets/"
GLOB_CHARS = "*?["


class CollectionError(ValueError):
    """An input cannot be listed: a list without a path column, a dataset without an image column."""


@dataclass(frozen=True)
class ImageRef:
    """One image to score: a file (``path``) or a dataset row (``source``, ``row``), or an input that names nothing."""

    key: str
    path: str | None = None
    source: int | None = None  # index into Collection.datasets
    row: int | None = None
    error: str | None = None


@dataclass
class Collection:
    """The refs in input order and the datasets their rows come from (``(dataset, image column)`` pairs)."""

    refs: list[ImageRef] = field(default_factory=list)
    datasets: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.refs)

    def load(self, index: int):
        """The RGB PIL image of ``refs[index]``; raises (FakeChainError, OSError ...) when it cannot be read."""
        from modeling.detector import load_rgb

        ref = self.refs[index]
        if ref.error is not None:
            raise FileNotFoundError(ref.error)
        if ref.path is not None:
            return load_rgb(ref.path)
        dataset, column = self.datasets[ref.source]
        return load_rgb(decode_cell(dataset[ref.row][column], ref.key))


def decode_cell(value, shown: str):
    """A dataset's image cell (``{"bytes", "path"}`` with decoding off, or a PIL image) as a decoded PIL image within
    the dataset image limits, or the path of its local file."""
    import io
    import warnings

    from PIL import Image

    from fakeinstruct.errors import FakeChainError
    from fakeinstruct.images import DEFAULT_LIMITS

    if isinstance(value, Image.Image):
        return value
    if not isinstance(value, dict):
        raise FakeChainError(f"{shown}: not an image cell ({type(value).__name__})", field="image")
    data, path = value.get("bytes"), value.get("path")
    if data is None:
        if not path:
            raise FakeChainError(f"{shown}: the image cell has neither bytes nor a path", field="image")
        return path  # a local file: load_rgb opens it
    limits = DEFAULT_LIMITS
    if len(data) > limits.max_bytes:
        raise FakeChainError(f"{shown}: image is {len(data)} bytes, over the limit of {limits.max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > limits.max_pixels:
                raise FakeChainError(f"{shown}: image is {img.width}x{img.height} pixels, over the pixel limit")
            if img.format not in limits.formats:
                raise FakeChainError(f"{shown}: image format {img.format} is not one of {limits.formats}")
            img.load()
    except FakeChainError:
        raise
    except Exception as err:  # PIL reports corrupt data as many types
        raise FakeChainError(f"{shown}: image does not decode: {err}", field="image") from err
    return img


def collect(
    inputs: list[str],
    *,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    recursive: bool = True,
    image_column: str | None = None,
    split: str | None = None,
) -> Collection:
    """Every image named by ``inputs``, in order (see the module docstring)."""
    extensions = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    collection, seen, duplicates = Collection(), set(), 0
    for spec in inputs:
        for ref in _expand(str(spec), collection, extensions, recursive, image_column, split):
            if ref.key in seen:
                duplicates += 1
                continue
            seen.add(ref.key)
            collection.refs.append(ref)
    if duplicates:
        logger.warning("%d image(s) were named more than once; each is scored once", duplicates)
    return collection


def _expand(spec, collection, extensions, recursive, image_column, split):
    if spec.startswith(HUB_PREFIX):
        return _dataset_refs(spec, collection, image_column, split)
    path = Path(spec)
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return _dataset_refs(spec, collection, image_column, split)
        return _folder_refs(path, extensions, recursive)
    if path.is_file():
        if path.suffix.lower() in LIST_SUFFIXES:
            return _list_refs(path, image_column)
        return [ImageRef(key=spec, path=spec)]
    if any(c in spec for c in GLOB_CHARS):
        refs = []
        for match in sorted(glob.glob(spec, recursive=True)):
            if os.path.isdir(match):
                refs += _folder_refs(Path(match), extensions, recursive)
            else:
                refs.append(ImageRef(key=match, path=match))
        if not refs:
            logger.warning("%s matches no file", spec)
        return refs
    return [ImageRef(key=spec, error=f"no such file or folder: {spec}")]


def _folder_refs(folder: Path, extensions, recursive: bool) -> list[ImageRef]:
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern) if p.suffix.lower() in extensions and p.is_file())
    if not files:
        logger.warning("%s has no image with a suffix in %s", folder, ", ".join(extensions))
    return [ImageRef(key=str(p), path=str(p)) for p in files]


def _list_refs(path: Path, image_column: str | None) -> list[ImageRef]:
    suffix = path.suffix.lower()
    with open(path, encoding="utf-8", newline="") as f:
        if suffix == ".txt":
            names = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
        elif suffix == ".csv":
            reader = csv.DictReader(f)
            column = _path_column(reader.fieldnames or [], image_column, path)
            names = [row[column] for row in reader]
        else:
            rows = [json.loads(line) for line in f if line.strip()]
            column = _path_column(list(rows[0]) if rows else [], image_column, path)
            names = [row.get(column) for row in rows]
    refs = []
    for number, name in enumerate(names, 1):
        if not name:
            refs.append(ImageRef(key=f"{path}:{number}", error=f"{path}: entry {number} has no path"))
            continue
        resolved = Path(name) if Path(name).is_absolute() else path.parent / name
        refs.append(ImageRef(key=str(resolved), path=str(resolved)))
    return refs


def _path_column(columns: list[str], wanted: str | None, path: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise CollectionError(f"{path} has no column {wanted!r} (columns: {', '.join(columns) or 'none'})")
        return wanted
    for name in PATH_COLUMNS:
        if name in columns:
            return name
    raise CollectionError(
        f"{path}: no image path column; name it with --image_column (columns: {', '.join(columns) or 'none'})"
    )


def _dataset_refs(spec: str, collection: Collection, image_column: str | None, split: str | None) -> list[ImageRef]:
    import datasets

    if spec.startswith(HUB_PREFIX):
        name, _, revision = spec[len(HUB_PREFIX) :].partition("@")
        loaded = datasets.load_dataset(name, revision=revision or None)
    else:
        loaded = datasets.load_from_disk(spec)
    splits = loaded if isinstance(loaded, datasets.DatasetDict) else {split or "": loaded}
    if split is not None and isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise CollectionError(f"{spec} has no split {split!r} (splits: {', '.join(loaded)})")
        splits = {split: loaded[split]}
    refs = []
    for name, dataset in splits.items():
        column = _image_column(dataset, image_column, spec)
        dataset = dataset.cast_column(column, datasets.Image(decode=False))
        collection.datasets.append((dataset, column))
        source = len(collection.datasets) - 1
        prefix = f"{spec}:{name}/" if name else f"{spec}:"
        refs += [ImageRef(key=f"{prefix}{row}", source=source, row=row) for row in range(len(dataset))]
    return refs


def _image_column(dataset, wanted: str | None, spec: str) -> str:
    import datasets

    columns = list(dataset.features)
    if wanted is not None:
        if wanted not in columns:
            raise CollectionError(f"{spec} has no column {wanted!r} (columns: {', '.join(columns)})")
        return wanted
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            return name
    raise CollectionError(f"{spec} has no Image column; name one with --image_column (columns: {', '.join(columns)})")
