"""The columnar builder must produce exactly the rows of the dict builder, for every format."""

import pyarrow as pa
import pytest

from fakeinstruct.chain.taxonomy import default_taxonomy
from fakeinstruct.generation.expand import Expander
from fakeinstruct.generation.formats import FORMATS
from fakeinstruct.templating.probes import probe_chains
from fakeinstruct.templating.registry import load_registry


@pytest.fixture(scope="module")
def pairs():
    expander = Expander(load_registry(entry_points=False), default_taxonomy(), seed=5)
    return [pair for chain in probe_chains() for pair in expander.expand(chain)]


@pytest.mark.parametrize(
    ("fmt", "embed"),
    [("trl", False), ("trl", True), ("prompt-completion", False), ("prompt-completion", True), ("llava", False)],
)
def test_columnar_table_equals_row_dicts(pairs, fmt, embed):
    layout = FORMATS[fmt]
    schema = layout.schema(embed)
    refs = [
        {"bytes": f"img{i}".encode(), "path": p.image} if embed else f"images/{p.image}" for i, p in enumerate(pairs)
    ]
    table = layout.table(pairs, refs, schema)
    expected = pa.Table.from_pylist([layout.row(p, r) for p, r in zip(pairs, refs, strict=True)], schema=schema)
    assert table.schema == schema
    assert table.to_pylist() == expected.to_pylist()
    assert any(len(p.turns) > 1 for p in pairs)  # multi-turn rows are covered


def test_schema_is_what_datasets_makes_of_the_features():
    """The shards' schema, Hugging Face metadata included, is ``datasets.Features``' own (no hand-written copy)."""
    from datasets import Features

    for layout in FORMATS.values():
        for embed in (False, True) if layout.has_images else (False,):
            schema = layout.schema(embed)
            assert Features.from_arrow_schema(schema) == layout.features(embed)
            assert Features.from_arrow_schema(schema).arrow_schema.equals(schema, check_metadata=True)


def test_count_matches_expand():
    expander = Expander(load_registry(entry_points=False), default_taxonomy(), seed=0)
    for chain in probe_chains():
        assert expander.count(chain) == len(list(expander.expand(chain)))


def test_yes_no_attribute_answers_balance_within_each_record():
    registry = load_registry(entry_points=False).select(["attribute"])
    expander = Expander(registry, default_taxonomy(), seed=0)
    for chain in probe_chains():
        words = [p.answer_word for p in expander.expand(chain) if p.answer_word]
        assert words.count("Yes") == words.count("No") > 0
