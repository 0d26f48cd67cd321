"""Output formats: one :class:`Format` object each, holding its ``datasets`` features, its row and its columns.

- ``trl``: conversational ``messages`` with content blocks and an ``images`` list (TRL's VLM SFT format);
- ``prompt-completion``: ``prompt`` and ``completion`` message lists (for completion-only loss);
- ``llava``: LLaVA's ``conversations`` with ``from``/``value`` and an ``<image>`` placeholder.

Every format carries the same metadata columns, so a row can always be traced to its record and template. A shard's
Arrow schema is its features' (with the Hugging Face metadata ``datasets`` reads), so shards concatenate and load as
one split. Parquet columns are built straight from the pairs: ``pa.Table.from_pylist`` on nested message dicts costs
more than rendering them, and :meth:`Format.table` equals it exactly (``tests/test_columns.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import pyarrow as pa

from fakeinstruct.generation.expand import Pair

FILE_FORMATS = ("parquet", "jsonl")
IMAGE_TOKEN = "<image>"
# ``image_path``: where the row's image is, relative to the dataset folder (``images/...``), whatever the image mode.
# Not called ``image``: TRL's collator would take a column of that name for the image itself.
METADATA = (
    "id",
    "task",
    "template_id",
    "chain_id",
    "image_path",
    "group",
    "label",
    "generator",
    "attribute",
    "positive_word",
    "negative_word",
    "answer_word",
)


def _message_feature():
    from datasets import List, Value

    return List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})})


def _messages(pair: Pair) -> list[dict]:
    messages = []
    for i, (question, answer) in enumerate(pair.turns):
        content = [{"type": "image", "text": None}] if i == 0 else []
        content.append({"type": "text", "text": question})
        messages.append({"role": "user", "content": content})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


class _Messages:
    """Flat buffers of a ``list<struct<role, content: list<struct<type, text>>>>`` column."""

    def __init__(self):
        self.row_offsets = [0]
        self.roles: list[str] = []
        self.block_offsets = [0]
        self.types: list[str] = []
        self.texts: list[str | None] = []

    def add(self, turns: list[tuple[str, str]], start: int = 0, stop: int | None = None) -> None:
        """Append one row holding messages ``start:stop`` of the user/assistant sequence of ``turns``."""
        stop = 2 * len(turns) if stop is None else stop
        for index in range(start, stop):
            question, answer = turns[index // 2]
            if index % 2 == 0:
                self.roles.append("user")
                if index == 0:
                    self.types.append("image")
                    self.texts.append(None)
                self.types.append("text")
                self.texts.append(question)
            else:
                self.roles.append("assistant")
                self.types.append("text")
                self.texts.append(answer)
            self.block_offsets.append(len(self.types))
        self.row_offsets.append(len(self.roles))

    def array(self, dtype: pa.ListType) -> pa.Array:
        message_type = dtype.value_type
        block_list_type = message_type.field("content").type
        blocks = pa.StructArray.from_arrays(
            [pa.array(self.types, pa.string()), pa.array(self.texts, pa.string())],
            fields=list(block_list_type.value_type),
        )
        content = pa.ListArray.from_arrays(pa.array(self.block_offsets, pa.int32()), blocks, type=block_list_type)
        messages = pa.StructArray.from_arrays([pa.array(self.roles, pa.string()), content], fields=list(message_type))
        return pa.ListArray.from_arrays(pa.array(self.row_offsets, pa.int32()), messages, type=dtype)


def image_path(image_ref) -> str:
    """The folder-relative path of an image reference (a path, or embedded ``{bytes, path}``)."""
    return image_ref if isinstance(image_ref, str) else image_ref["path"]


class Format(ABC):
    """One output layout. ``image_ref`` is what a row's images hold: a relative path, or ``{bytes, path}``."""

    name: str
    has_images = True
    path_column = "image_path"

    @abstractmethod
    def conversation_features(self) -> dict:
        """The ``datasets`` features of this layout's conversation columns (metadata and images are added)."""

    def features(self, embed_images: bool):
        """The ``datasets.Features`` of a row (``datasets`` is imported here only, in the main process)."""
        from datasets import Features, Image, List, Value

        features = {self._column(name): Value("string") for name in METADATA} | self.conversation_features()
        if self.has_images:
            features["images"] = List(Image()) if embed_images else List(Value("string"))
        return Features(features)

    def schema(self, embed_images: bool) -> pa.Schema:
        return self.features(embed_images).arrow_schema

    @abstractmethod
    def conversation(self, pair: Pair) -> dict:
        """One pair's conversation columns as Python values (the row form: JSONL shards)."""

    @abstractmethod
    def conversation_columns(self, pairs: list[Pair], schema: pa.Schema) -> dict[str, pa.Array]:
        """The same columns for many pairs, built as Arrow arrays of ``schema``'s types (the fast shard path)."""

    def _column(self, name: str) -> str:
        return self.path_column if name == "image_path" else name

    def _metadata(self, pair: Pair, image_ref, name: str):
        return image_path(image_ref) if name == "image_path" else getattr(pair, name)

    def row(self, pair: Pair, image_ref) -> dict:
        """One row as a dict (JSONL shards)."""
        row = {self._column(key): self._metadata(pair, image_ref, key) for key in METADATA} | self.conversation(pair)
        if self.has_images:
            row["images"] = [image_ref]
        return row

    def table(self, pairs: list[Pair], image_refs: list, schema: pa.Schema) -> pa.Table:
        """The rows of ``pairs`` as a table of ``schema`` (Parquet shards)."""
        columns = {}
        for name in METADATA:
            if name == "image_path":
                columns[self.path_column] = pa.array([image_path(r) for r in image_refs], pa.string())
            else:
                columns[name] = pa.array([getattr(p, name) for p in pairs], pa.string())
        columns |= self.conversation_columns(pairs, schema)
        if self.has_images:
            dtype = schema.field("images").type
            values = pa.array(image_refs, dtype.value_type)
            offsets = pa.array(range(len(pairs) + 1), pa.int32())
            columns["images"] = pa.ListArray.from_arrays(offsets, values, type=dtype)
        return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


class Conversational(Format):
    name = "trl"

    def conversation_features(self) -> dict:
        return {"messages": _message_feature()}

    def conversation(self, pair: Pair) -> dict:
        return {"messages": _messages(pair)}

    def conversation_columns(self, pairs, schema):
        messages = _Messages()
        for pair in pairs:
            messages.add(pair.turns)
        return {"messages": messages.array(schema.field("messages").type)}


class PromptCompletion(Format):
    name = "prompt-completion"

    def conversation_features(self) -> dict:
        return {"prompt": _message_feature(), "completion": _message_feature()}

    def conversation(self, pair: Pair) -> dict:
        messages = _messages(pair)
        return {"prompt": messages[:-1], "completion": messages[-1:]}

    def conversation_columns(self, pairs, schema):
        prompt, completion = _Messages(), _Messages()
        for pair in pairs:
            last = 2 * len(pair.turns) - 1
            prompt.add(pair.turns, 0, last)
            completion.add(pair.turns, last, last + 1)
        return {
            "prompt": prompt.array(schema.field("prompt").type),
            "completion": completion.array(schema.field("completion").type),
        }


class Llava(Format):
    name = "llava"
    has_images = False
    path_column = "image"  # LLaVA's own field: the image's path relative to the image folder (the dataset folder)

    def conversation_features(self) -> dict:
        from datasets import List, Value

        return {"conversations": List({"from": Value("string"), "value": Value("string")})}

    @staticmethod
    def _turns(pair: Pair) -> list[tuple[str, str]]:
        out = []
        for i, (question, answer) in enumerate(pair.turns):
            out += [("human", f"{IMAGE_TOKEN}\n{question}" if i == 0 else question), ("gpt", answer)]
        return out

    def conversation(self, pair: Pair) -> dict:
        return {"conversations": [{"from": who, "value": value} for who, value in self._turns(pair)]}

    def conversation_columns(self, pairs, schema):
        offsets, speakers, values = [0], [], []
        for pair in pairs:
            for who, value in self._turns(pair):
                speakers.append(who)
                values.append(value)
            offsets.append(len(values))
        dtype = schema.field("conversations").type
        turns = pa.StructArray.from_arrays(
            [pa.array(speakers, pa.string()), pa.array(values, pa.string())], fields=list(dtype.value_type)
        )
        return {"conversations": pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), turns, type=dtype)}


FORMATS: dict[str, Format] = {f.name: f for f in (Conversational(), PromptCompletion(), Llava())}
