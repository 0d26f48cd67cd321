"""Build an Arrow table of FakeInstruct rows column by column, straight from pairs.

``pa.Table.from_pylist`` on nested message dicts costs more than rendering the pairs; filling flat value and
offset arrays and nesting them with ``ListArray.from_arrays`` is an order of magnitude cheaper. The result
equals ``from_pylist([to_row(p) ...])`` exactly, which ``tests/test_columns.py`` checks for every format.
"""

from __future__ import annotations

import pyarrow as pa

from fakeinstruct.generation.expand import Pair
from fakeinstruct.generation.formats import IMAGE_TOKEN, METADATA


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


def build_table(pairs: list[Pair], fmt: str, image_refs: list, schema: pa.Schema) -> pa.Table:
    """The rows of ``pairs`` as a table of ``schema``; ``image_refs[i]`` is what row ``i``'s images hold."""
    columns = {name: pa.array([getattr(p, name) for p in pairs], pa.string()) for name in METADATA}
    n = len(pairs)
    if fmt == "trl":
        messages = _Messages()
        for pair in pairs:
            messages.add(pair.turns)
        columns["messages"] = messages.array(schema.field("messages").type)
    elif fmt == "prompt-completion":
        prompt, completion = _Messages(), _Messages()
        for pair in pairs:
            last = 2 * len(pair.turns) - 1
            prompt.add(pair.turns, 0, last)
            completion.add(pair.turns, last, last + 1)
        columns["prompt"] = prompt.array(schema.field("prompt").type)
        columns["completion"] = completion.array(schema.field("completion").type)
    else:
        offsets, speakers, values = [0], [], []
        for pair in pairs:
            for i, (question, answer) in enumerate(pair.turns):
                speakers += ["human", "gpt"]
                values += [f"{IMAGE_TOKEN}\n{question}" if i == 0 else question, answer]
            offsets.append(len(values))
        dtype = schema.field("conversations").type
        turns = pa.StructArray.from_arrays(
            [pa.array(speakers, pa.string()), pa.array(values, pa.string())], fields=list(dtype.value_type)
        )
        columns["conversations"] = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), turns, type=dtype)
    if "images" in schema.names:
        dtype = schema.field("images").type
        values = pa.array(image_refs, dtype.value_type)
        columns["images"] = pa.ListArray.from_arrays(pa.array(range(n + 1), pa.int32()), values, type=dtype)
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
