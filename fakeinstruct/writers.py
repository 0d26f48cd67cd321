"""Sharded, atomic writers for FakeInstruct rows: JSONL or Parquet (zstd) with Hugging Face feature metadata.

Every shard of a format has one explicit Arrow schema, so shards concatenate and ``datasets`` loads them as one
split. With embedded images the ``images`` column is declared as a list of ``datasets.Image`` and arrives as
PIL images; with relative paths it is a list of strings that :func:`fakeinstruct.loading.load_fakeinstruct`
resolves against the dataset root.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa

from fakeinstruct.atomic import atomic_write
from fakeinstruct.formats import METADATA

FILE_FORMATS = ("parquet", "jsonl")
_TEXT_BLOCK = pa.struct([("type", pa.string()), ("text", pa.string())])
_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.list_(_TEXT_BLOCK))])
_IMAGE_EMBEDDED = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def arrow_schema(fmt: str, embed_images: bool) -> pa.Schema:
    fields = [(name, pa.string()) for name in METADATA]
    images = pa.list_(_IMAGE_EMBEDDED if embed_images else pa.string())
    if fmt == "trl":
        fields += [("messages", pa.list_(_MESSAGE)), ("images", images)]
    elif fmt == "prompt-completion":
        fields += [("prompt", pa.list_(_MESSAGE)), ("completion", pa.list_(_MESSAGE)), ("images", images)]
    else:
        fields += [("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())])))]
    schema = pa.schema(fields)
    features = {f.name: _feature(f.type) for f in schema}
    if embed_images and "images" in features:
        features["images"] = {"feature": {"_type": "Image"}, "_type": "List"}
    return schema.with_metadata({"huggingface": json.dumps({"info": {"features": features}})})


def _feature(dtype: pa.DataType) -> dict:
    """The ``datasets`` feature description of an Arrow type (strings, lists and structs are all we use)."""
    if pa.types.is_list(dtype):
        return {"feature": _feature(dtype.value_type), "_type": "List"}
    if pa.types.is_struct(dtype):
        return {dtype.field(i).name: _feature(dtype.field(i).type) for i in range(dtype.num_fields)}
    if pa.types.is_binary(dtype):
        return {"dtype": "binary", "_type": "Value"}
    return {"dtype": "string", "_type": "Value"}


@dataclass
class Shard:
    path: str
    rows: int
    sha256: str


class ShardWriter:
    """Writes one split's rows into ``<out>/<split>/<split>-NNNNN.<ext>`` shards of ``shard_size`` rows."""

    def __init__(self, out_dir: Path, split: str, fmt: str, file_format: str, shard_size: int, embed_images: bool):
        if file_format not in FILE_FORMATS:
            raise ValueError(f"unknown file format {file_format!r}; one of {', '.join(FILE_FORMATS)}")
        self.out_dir, self.split, self.file_format, self.shard_size = out_dir, split, file_format, shard_size
        self.schema = arrow_schema(fmt, embed_images)
        self.rows: list = []
        self.shards: list[Shard] = []

    def write(self, row: dict) -> None:
        self.rows.append(orjson.dumps(row) if self.file_format == "jsonl" else row)
        if len(self.rows) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        name = f"{self.split}/{self.split}-{len(self.shards):05d}.{self.file_format}"
        path = self.out_dir / name
        with atomic_write(path) as handle:
            if self.file_format == "jsonl":
                handle.write(b"\n".join(self.rows) + b"\n")
            else:
                import pyarrow.parquet as pq

                table = pa.Table.from_pylist(self.rows, schema=self.schema)
                pq.write_table(table, handle, compression="zstd")
        self.shards.append(Shard(name, len(self.rows), hashlib.sha256(path.read_bytes()).hexdigest()))
        self.rows = []

    def close(self) -> list[Shard]:
        self.flush()
        return self.shards
