"""The Arrow schema of FakeInstruct shards, with the Hugging Face feature metadata that ``datasets`` reads.

Every shard of a format has this one explicit schema, so shards concatenate and ``datasets`` loads them as one
split. With embedded images the ``images`` column is declared as a list of ``datasets.Image`` and arrives as
PIL images; with relative paths it is a list of strings that :func:`fakeinstruct.loading.load_fakeinstruct`
resolves against the dataset root.
"""

from __future__ import annotations

import json

import pyarrow as pa

from fakeinstruct.generation.formats import METADATA

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
