"""Pass one of generation: validate the chains file and plan every output shard before rendering anything.

A shard is a run of whole split components (records linked by a shared image or source group), filled up to
the shard size with the pairs each record will give (counted, not rendered). Because components never
straddle shards, exact duplicates (same image, question and answer) can be removed inside one shard, and a
shard's content depends only on the chains, the templates, the seed and the shard size: any number of workers,
and any interruption, give the same shards.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import orjson

from fakeinstruct.chain.origin import normalize_split, split_named_in
from fakeinstruct.chain.reader import count_lines, read_chains
from fakeinstruct.errors import FakeChainError, FakeInstructError
from fakeinstruct.generation.context import GenerationContext
from fakeinstruct.generation.records import Plan, RecordRef, ShardSpec, review_summary
from fakeinstruct.generation.splits import SPLITS, assign_splits, components

logger = logging.getLogger(__name__)


def byte_ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """Split ``path`` into at most ``parts`` byte ranges that start at line starts (after a ``\n``: a file whose lines
    end in a lone ``\r`` is one range)."""
    size = path.stat().st_size
    bounds = [0]
    with path.open("rb") as handle:
        for i in range(1, parts):
            handle.seek(size * i // parts)
            handle.readline()
            position = handle.tell()
            if bounds[-1] < position < size:
                bounds.append(position)
    bounds.append(size)
    return list(itertools.pairwise(bounds))


def _canonical(line) -> bool:
    """Whether the line's JSON is exactly the validated record's, so that rendering may trust it unvalidated.

    Compared as serialised bytes, not as dicts: 1 == 1.0 for a dict, not for a template that prints it.
    """
    return orjson.dumps(line.chain.to_data(), option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        line.data, option=orjson.OPT_SORT_KEYS
    )


def own_split(data: dict, field_path: str) -> str | None:
    """The dataset split that the record field ``field_path`` (dotted, e.g. ``source.origin``) names, if any.

    ``source.origin`` is read as ``<dataset>/<split>[/<category>]`` (:mod:`fakeinstruct.chain.origin`); any other
    field's first ``/``- or ``.``-separated part that is a split name counts (``train/cat/1.jpg``, ``x.test.7``).
    """
    value = data
    for key in field_path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, str):
        return None
    if field_path == "source.origin":
        return split_named_in(value)
    return next((normalize_split(p) for p in re.split(r"[/.]", value) if normalize_split(p)), None)


def scan_range(context: GenerationContext, byte_range: tuple[int, int]) -> tuple[tuple[list, ...], list, int, int]:
    """Worker task: validate the lines of one byte range; line numbers count from 1 at the range start.

    Returns the valid records as columns (the fields of :class:`RecordRef`, in order: lists of numbers and strings
    pickle ten times faster than as many objects), the errors, the number of rejected lines and the number of
    lines in the range.
    """
    config, expander = context.config, context.expander
    start, end = byte_range
    columns: tuple[list, ...] = tuple([] for _ in RecordRef.__slots__)
    numbers, offsets, lengths, ids, images, groups, counts, canonical, labels, calls, decided, advice, own = columns
    errors, rejected = [], 0
    lines = read_chains(
        config.chains,
        root=config.root,
        taxonomy=context.taxonomy,
        check_images=config.check_images,
        start=start,
        end=end,
        check_duplicates=False,
        image_cache=context.image_checks,  # ranges share images: check each once per worker
    )
    for line in lines:
        if line.ok:
            chain = line.chain
            numbers.append(line.number)
            offsets.append(line.offset)
            lengths.append(len(line.raw))
            ids.append(chain.id)
            images.append(chain.image)
            groups.append(chain.group)
            canonical.append(_canonical(line))
            counts.append(expander.count(line.data if canonical[-1] else chain))
            labels.append(chain.label)
            calls.append(chain.provenance.reviewer_call)
            decided.append(chain.provenance.evidence_decides_label)
            anomalous = any(a.verdict == "anomalous" for a in chain.attributes)
            advice.append("own" if chain.enhancement else "taxonomy" if anomalous else "none")
            own.append(own_split(line.data, config.split_from) if config.split_from else None)
        else:
            rejected += 1
            errors += line.errors
    chains = context.chains
    chains.seek(start)
    data = chains.read(end - start)
    return columns, errors, rejected, count_lines(data)


def scan(chains: Path, results: Iterable[tuple]) -> tuple[list[RecordRef], int]:
    """Merge the :func:`scan_range` results of consecutive ranges (in order): fix line numbers, log every
    problem, and reject records whose id an earlier line already used."""
    refs: list[RecordRef] = []
    rejected, base = 0, 0
    first_line: dict[str, int] = {}
    for columns, errors, part_rejected, lines in results:
        for err in errors:
            err.line += base
            logger.warning("%s", err)
        rejected += part_rejected
        for number, offset, *fields in zip(*columns, strict=True):
            ref = RecordRef(number + base, offset, *fields)
            rid = ref.id
            if rid in first_line:
                rejected += 1
                message = f"duplicate id {rid!r} (first on line {first_line[rid]})"
                logger.warning("%s", FakeChainError(message, file=str(chains), line=ref.line, field="id"))
                continue
            first_line[rid] = ref.line
            refs.append(ref)
        base += lines
    if not refs:
        raise FakeChainError("no valid record remains", file=str(chains))
    return refs, rejected


def image_prefix(paths: Iterable[str]) -> str:
    """The folders every image path starts with (``"images/"`` for the sample): the output's ``images/`` replaces
    them, so that a dataset whose images already sit in an ``images/`` folder does not get ``images/images/``."""
    folders = None
    for path in paths:
        parts = path.split("/")[:-1]
        if folders is None:
            folders = parts
        else:
            common = 0
            while common < min(len(folders), len(parts)) and folders[common] == parts[common]:
                common += 1
            folders = folders[:common]
        if not folders:
            return ""
    return "".join(f"{folder}/" for folder in folders or ())


def _own_splits(refs: list[RecordRef], ratios: dict[str, float], seed: int, split_from: str) -> dict[str, str]:
    """Each record's dataset split; the dataset's train records dealt to train and validation by their two ratios
    (grouped, as usual) unless the dataset has a validation split of its own."""
    missing = [r for r in refs if r.own_split is None]
    if missing:
        raise FakeInstructError(
            f"--split_from {split_from}: {len(missing)} record(s) name no split (train, validation or test), the "
            f"first {missing[0].id!r} on line {missing[0].line}",
            field="split_from",
        )
    split_of = {r.id: r.own_split for r in refs}
    train = [(r.id, r.image, r.group) for r in refs if r.own_split == "train"]
    share = ratios["train"] + ratios["validation"]
    if train and ratios["validation"] > 0 and not any(r.own_split == "validation" for r in refs):
        dealt = {"train": ratios["train"] / share, "validation": ratios["validation"] / share, "test": 0.0}
        split_of.update(assign_splits(train, dealt, seed))
    return split_of


def plan_shards(
    refs: list[RecordRef], ratios: dict[str, float], seed: int, shard_size: int, split_from: str | None = None
) -> Plan:
    """Assign splits (by ``ratios``, or the dataset's own with ``split_from``) and plan every shard."""
    prefix = image_prefix(r.image for r in refs)
    keys = [(r.id, r.image, r.group) for r in refs]
    component_of = components(keys)
    if split_from:
        split_of = _own_splits(refs, ratios, seed, split_from)
    else:
        split_of = assign_splits(keys, ratios, seed, component_of=component_of)
    # components in order of their first record, each with its records in file order (with the dataset's own
    # splits, a component the dataset put in two splits is one part per split)
    members: dict[tuple[str, str], list[RecordRef]] = {}
    for ref in refs:
        members.setdefault((component_of[ref.id], split_of[ref.id]), []).append(ref)
    shards: list[ShardSpec] = []
    current = {split: ShardSpec(split, 0, image_prefix=prefix) for split in SPLITS}
    for (_, split), records in members.items():
        shard = current[split]
        for ref in records:
            shard.records.append((ref.offset, ref.length, ref.line, ref.canonical))
            shard.planned_pairs += ref.pairs
        if shard.planned_pairs >= shard_size:
            shards.append(shard)
            current[split] = ShardSpec(split, shard.index + 1, image_prefix=prefix)
    shards += [s for s in current.values() if s.records]
    shards.sort(key=lambda s: (SPLITS.index(s.split), s.index))
    counts = Counter(split_of[r.id] for r in refs)
    per_split = {s: counts[s] for s in SPLITS}
    review = review_summary(refs)
    if split_from:
        spans: dict[str, set[str]] = {}
        for component, split in members:
            spans.setdefault(component, set()).add(split)
        shared = sum(len(records) for (component, _), records in members.items() if len(spans[component]) > 1)
        if shared:
            logger.warning(
                "%d record(s) share an image or source group with a record of another split of the dataset "
                "(--split_from %s keeps the dataset's split as it is)",
                shared,
                split_from,
            )
        review["dataset_split"] = {"field": split_from, "records_sharing_a_group_across_splits": shared}
    return Plan(shards, len(refs), per_split, sum(s.planned_pairs for s in shards), prefix, review)
