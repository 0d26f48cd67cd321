"""The convention for ``source.origin`` of imported records: ``<dataset>/<split>[/<category>]``.

``fakeinstruct import`` writes e.g. ``FakeClue/train/animal``: the dataset, its own split and its category, so that
``fakeinstruct generate --split_from source.origin`` can keep the dataset's split and evaluation can report per
category. Split names are normalised (``val`` -> ``validation``).
"""

from __future__ import annotations

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}


def normalize_split(name: str) -> str | None:
    """``"val"`` -> ``"validation"``; None for a name that is no split."""
    return SPLIT_NAMES.get(name.strip().lower())


def make_origin(dataset: str, split: str | None, category: str | None = None) -> str:
    """``<dataset>/<split>[/<category>]`` (a ``/`` inside the category becomes a space)."""
    parts = [dataset]
    if split:
        parts.append(split)
    if category:
        parts.append(" ".join(category.replace("/", " ").split()))
    return "/".join(parts)


def split_named_in(value: str) -> str | None:
    """The split a ``/``-separated value names: its first part, after the first, that is a split name."""
    for part in str(value).split("/")[1:]:
        split = normalize_split(part)
        if split:
            return split
    return None


def category_of(origin: str) -> str | None:
    """The category of an origin written by :func:`make_origin` (its third part), if any."""
    parts = origin.split("/")
    return parts[2] if len(parts) > 2 else None
