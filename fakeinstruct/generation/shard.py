"""Pass two of generation, in a worker: render one planned shard and write it atomically.

A worker renders shard after shard with its :class:`~fakeinstruct.generation.context.GenerationContext`; the main
process only collects each finished shard's manifest entry.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from fakeinstruct.chain import FakeChain
from fakeinstruct.errors import TemplateError
from fakeinstruct.files import atomic_write, copy_file, resolve_inside
from fakeinstruct.generation.context import GenerationContext
from fakeinstruct.generation.records import ShardSpec
from fakeinstruct.generation.stats import PairStats

# failed renders kept as examples (those on the first lines of the chains file); all of them are counted
MAX_FAILURE_EXAMPLES = 10


@dataclass
class ShardResult:
    name: str
    path: str
    rows: int
    duplicates: int
    sha256: str
    stats: dict
    # pairs left out because their template failed on their record: {} when none, else their count, the count per
    # template file and field, and the first few failures (see _failure_summary)
    failures: dict = field(default_factory=dict)


def _link_image(root: Path, relative: str, dst: str, folders: set[str]) -> None:
    """Hard-link (else copy) the record's image ``relative`` (to ``root``) to ``dst``, once.

    ``os.link`` creates the name atomically, complete or not at all, so no temporary name is needed, and a name
    that another worker or an earlier run made is left alone. ``folders`` remembers the folders this worker
    made: creating the folder again for each record cost a system call per record.
    """
    src = resolve_inside(root, relative)
    folder = dst.rpartition("/")[0]
    if folder not in folders:
        os.makedirs(folder, exist_ok=True)
        folders.add(folder)
    try:
        os.link(src, dst)
        return
    except FileExistsError:
        if os.path.exists(dst):
            return
    except OSError:
        pass
    # another file system, or no hard links there, or a dangling link in the way: copy, then rename over
    copy_file(src, dst)


def render_shard(context: GenerationContext, spec: ShardSpec) -> ShardResult:
    config, expander, chains = context.config, context.expander, context.chains
    root, out = Path(config.root), Path(config.out)
    folders = context.image_folders
    validation = {"taxonomy": context.taxonomy}
    pairs, refs, seen = [], [], set()
    duplicates = 0
    image_bytes: dict[str, bytes] = {}
    failures: list[dict] = []
    for offset, length, line, canonical in spec.records:
        chains.seek(offset)
        raw = chains.read(length)
        # validated in pass one: parsed only, unless its JSON differs from the validated record's
        data = orjson.loads(raw) if canonical else FakeChain.model_validate_json(raw, context=validation).to_data()
        on_error = _failure_recorder(failures, config, line, data["id"])
        image = data["image"]
        name = spec.output_image(image)
        if config.images == "embed":
            if image not in image_bytes:
                image_bytes[image] = resolve_inside(root, image).read_bytes()
            ref = {"bytes": image_bytes[image], "path": name}
        else:
            _link_image(root, image, str(out / name), folders)
            ref = name
        for pair in expander.expand(data, on_error):
            key = (pair.image, *pair.turns)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            pairs.append(pair)
            refs.append(ref)
    layout = context.layout
    if config.file_format == "jsonl":
        encoded = b"".join(orjson.dumps(layout.row(p, r)) + b"\n" for p, r in zip(pairs, refs, strict=True))
    else:
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(layout.table(pairs, refs, context.schema), buffer, compression="zstd")
        encoded = buffer.getvalue()
    path = f"{spec.name}.{config.file_format}"
    with atomic_write(out / path) as handle:
        handle.write(encoded)
    stats = PairStats()
    stats.add_pairs(pairs, spec.split)
    digest = hashlib.sha256(encoded).hexdigest()
    return ShardResult(spec.name, path, len(pairs), duplicates, digest, stats.state(), _failure_summary(failures))


def _failure_summary(failures: list[dict]) -> dict:
    if not failures:
        return {}
    by_template: dict[str, int] = {}
    for failure in failures:
        key = f"{failure['template']}: {failure['field']}"
        by_template[key] = by_template.get(key, 0) + 1
    # each shard keeps its earliest failures, so the run's earliest are the same however the records are sharded
    examples = sorted(failures, key=lambda f: (f["line"], f["template"], f["field"], f["error"]))
    return {"pairs": len(failures), "by_template": by_template, "examples": examples[:MAX_FAILURE_EXAMPLES]}


def _failure_recorder(failures: list[dict], config, line: int, chain_id: str):
    """What to do when a template fails on this record: stop (``--strict``) or note it and leave the pair out."""

    def on_error(err: TemplateError) -> None:
        where = f"record {chain_id!r} on line {line} of {config.chains}"
        if config.strict:
            raise TemplateError(f"{err.message} ({where})", file=err.file, field=err.field) from err
        failures.append({"template": err.file, "field": err.field, "line": line, "id": chain_id, "error": err.message})

    return on_error
