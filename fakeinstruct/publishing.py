"""A FakeInstruct folder as it is published: self-contained shards that ``load_dataset(repo)`` and ``trl sft`` take.

Locally, images are stored once under ``images/`` and rows name them relative to the folder: small, and what
``load_fakeinstruct`` resolves. A Hub repo has no working directory to resolve paths against, so
:func:`stage_dataset` writes every shard again with each row's image bytes embedded (``datasets.Image``), in the
format's own schema, with a dataset card whose snippet loads the repo by its id. Embedding repeats an image's bytes
in each of its rows: the price of a dataset that trains as it is, wherever it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from fakeinstruct.errors import FakeInstructError
from fakeinstruct.files import resolve_inside, write_text
from fakeinstruct.folder import CONFIG_FILE, FIGURE_FILE, MANIFEST_FILE, STATS_FILE, FakeInstructFolder

logger = logging.getLogger(__name__)


def _embed_table(table, root: Path, schema, cache: dict[str, bytes]):
    """``table`` with its ``images`` paths replaced by ``{bytes, path}`` read from ``root``."""
    import pyarrow as pa

    refs = []
    for paths in table.column("images").to_pylist():
        row = []
        for path in paths:
            if path not in cache:
                cache[path] = resolve_inside(root, path).read_bytes()
            row.append({"bytes": cache[path], "path": path})
        refs.append(row)
    columns = [
        table.column(name) if name != "images" else pa.array(refs, schema.field("images").type)
        for name in schema.names
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def stage_dataset(path: str | Path, staging: str | Path, repo_id: str) -> Path:
    """Fill ``staging`` with the publishable form of the folder at ``path`` (see the module docstring)."""
    import pyarrow.parquet as pq

    from fakeinstruct.generation.formats import FORMATS
    from fakeinstruct.report.card import render_dataset_card

    folder, staging = FakeInstructFolder.open(path), Path(staging)
    layout = FORMATS[folder.format]
    identity = dict(folder.identity)
    if not layout.has_images:  # LLaVA's layout names images by path, resolved against an image folder
        shutil.copytree(folder.path, staging, dirs_exist_ok=True)
        return staging
    if folder.file_format != "parquet":
        raise FakeInstructError(
            f"{folder.path} holds {folder.file_format} shards: generate with --file_format parquet to publish (image "
            "bytes are embedded in Parquet)"
        )
    schema, cache = layout.schema(embed_images=True), {}
    for split, shards in folder.shards().items():
        (staging / split).mkdir(parents=True, exist_ok=True)
        for shard in shards:
            table = pq.read_table(shard)
            if identity["images"] == "relative":
                table = _embed_table(table, folder.path, schema, cache)
            pq.write_table(table, staging / split / shard.name, compression="zstd")
    logger.info("embedded %d images in the shards of %s", len(cache), folder.path)
    identity["images"] = "embed"
    entries = {}
    for shard in sorted(staging.glob("*/*.parquet")):
        name = f"{shard.parent.name}/{shard.stem}"
        digest = hashlib.sha256(shard.read_bytes()).hexdigest()
        entries[name] = {"path": f"{name}.parquet", "rows": pq.ParquetFile(shard).metadata.num_rows, "sha256": digest}
    write_text(staging / MANIFEST_FILE, json.dumps({"shards": entries}, indent=1, sort_keys=True) + "\n")
    stats = folder.stats()
    write_text(staging / STATS_FILE, json.dumps(stats, indent=2) + "\n")
    write_text(staging / CONFIG_FILE, json.dumps({**folder.config, "identity": identity}, indent=2) + "\n")
    if (folder.path / FIGURE_FILE).is_file():
        shutil.copy2(folder.path / FIGURE_FILE, staging / FIGURE_FILE)
    write_text(staging / "README.md", render_dataset_card(identity | {"out": repo_id, "repo_id": repo_id}, stats))
    return staging
