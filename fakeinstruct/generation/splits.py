"""Leakage-free train/validation/test splits: records that share an image or a split group stay together.

Groups are the connected components of "shares an image or a ``source.group``" (crops of one photo, or two
annotations of one image). Components are ordered by a seeded hash and dealt greedily to the split that is
furthest below its target share of records, so the split is deterministic and close to the requested
ratios even with few groups, and never depends on the order of the input file.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

SPLITS = ("train", "validation", "test")


class _UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        parent = self.parent.setdefault(key, key)
        if parent != key:
            parent = self.parent[key] = self.find(parent)
        return parent

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def parse_ratios(text: str) -> dict[str, float]:
    """``"0.8,0.1,0.1"`` -> {"train": 0.8, "validation": 0.1, "test": 0.1}."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as err:
        raise ValueError(f"split ratios {text!r} must be three numbers such as 0.8,0.1,0.1") from err
    if len(values) != 3 or any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"split ratios {text!r} must be three non-negative numbers summing to 1")
    return dict(zip(SPLITS, values, strict=True))


def components(records: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """Map record id -> component key, for ``records`` given as (id, image, group) triples."""
    records = list(records)
    uf = _UnionFind()
    for _, image, group in records:
        uf.union("img:" + image, "grp:" + group)
    return {rid: uf.find("img:" + image) for rid, image, _ in records}


def assign_splits(
    records: Iterable[tuple[str, str, str]], ratios: dict[str, float], seed: int = 0, component_of=None
) -> dict[str, str]:
    """Map record id -> split, for ``records`` given as (id, image, group) triples."""
    component_of = component_of if component_of is not None else components(records)
    sizes = Counter(component_of.values())

    def order(component: str) -> str:
        return hashlib.sha256(f"{seed}\x1f{component}".encode()).hexdigest()

    total = len(component_of) or 1
    counts = dict.fromkeys(SPLITS, 0)
    split_of_component: dict[str, str] = {}
    wanted = [s for s in SPLITS if ratios[s] > 0]
    for component in sorted(sizes, key=order):
        # the split with the largest deficit against its target takes the next component
        split = max(wanted, key=lambda s: (ratios[s] * total - counts[s]) / ratios[s])
        split_of_component[component] = split
        counts[split] += sizes[component]
    return {rid: split_of_component[c] for rid, c in component_of.items()}
