"""Pass one of generation: validate the chains file and plan every output shard before rendering anything.

A shard is a run of whole split components (records linked by a shared image or source group), filled up to
the shard size with the pairs each record will give (counted, not rendered). Because components never
straddle shards, exact duplicates (same image, question and answer) can be removed inside one shard, and a
shard's content depends only on the chains, the templates, the seed and the shard size: any number of workers,
and any interruption, give the same shards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fakeinstruct.chain import FakeChain
from fakeinstruct.errors import FakeChainError
from fakeinstruct.reader import read_chains
from fakeinstruct.splits import SPLITS, assign_splits, components
from fakeinstruct.taxonomy import Taxonomy

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecordRef:
    """Where a valid record is in the chains file, and what the plan needs to know about it."""

    offset: int
    length: int
    id: str
    image: str
    group: str
    pairs: int


@dataclass
class ShardSpec:
    split: str
    index: int
    records: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) in the chains file
    planned_pairs: int = 0

    @property
    def name(self) -> str:
        return f"{self.split}/{self.split}-{self.index:05d}"


@dataclass
class Plan:
    shards: list[ShardSpec]
    records: int
    records_per_split: dict[str, int]
    planned_pairs: int


def scan(
    chains: Path, root: Path, taxonomy: Taxonomy, count: Callable[[FakeChain], int], *, check_images: bool
) -> tuple[list[RecordRef], int]:
    """Validate every line; return the valid records' references and the number of rejected lines."""
    refs: list[RecordRef] = []
    rejected = 0
    for line in read_chains(chains, root=root, taxonomy=taxonomy, check_images=check_images):
        if line.ok:
            chain = line.chain
            refs.append(RecordRef(line.offset, len(line.raw), chain.id, chain.image, chain.group, count(chain)))
        else:
            rejected += 1
            for err in line.errors:
                logger.warning("%s", err)
    if not refs:
        raise FakeChainError("no valid record remains", file=str(chains))
    return refs, rejected


def plan_shards(refs: list[RecordRef], ratios: dict[str, float], seed: int, shard_size: int) -> Plan:
    keys = [(r.id, r.image, r.group) for r in refs]
    component_of = components(keys)
    split_of = assign_splits(keys, ratios, seed, component_of=component_of)
    # components in order of their first record, each with its records in file order
    members: dict[str, list[RecordRef]] = {}
    for ref in refs:
        members.setdefault(component_of[ref.id], []).append(ref)
    shards: list[ShardSpec] = []
    current = {split: ShardSpec(split, 0) for split in SPLITS}
    for records in members.values():
        split = split_of[records[0].id]
        shard = current[split]
        for ref in records:
            shard.records.append((ref.offset, ref.length))
            shard.planned_pairs += ref.pairs
        if shard.planned_pairs >= shard_size:
            shards.append(shard)
            current[split] = ShardSpec(split, shard.index + 1)
    shards += [s for s in current.values() if s.records]
    shards.sort(key=lambda s: (SPLITS.index(s.split), s.index))
    per_split = {s: sum(1 for r in refs if split_of[r.id] == s) for s in SPLITS}
    return Plan(shards, len(refs), per_split, sum(s.planned_pairs for s in shards))
