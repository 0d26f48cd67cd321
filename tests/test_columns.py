"""The columnar builder must produce exactly the rows of the dict builder, for every format."""

import pyarrow as pa
import pytest

from fakeinstruct.chain.taxonomy import default_taxonomy
from fakeinstruct.generation.arrow_schema import arrow_schema
from fakeinstruct.generation.columns import build_table
from fakeinstruct.generation.expand import Expander
from fakeinstruct.generation.formats import to_row
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
    schema = arrow_schema(fmt, embed)
    refs = [
        {"bytes": f"img{i}".encode(), "path": p.image} if embed else f"images/{p.image}" for i, p in enumerate(pairs)
    ]
    table = build_table(pairs, fmt, refs, schema)
    expected = pa.Table.from_pylist([to_row(p, fmt, r) for p, r in zip(pairs, refs, strict=True)], schema=schema)
    assert table.schema == schema
    assert table.to_pylist() == expected.to_pylist()
    assert any(len(p.turns) > 1 for p in pairs)  # multi-turn rows are covered


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
