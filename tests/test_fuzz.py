"""Fuzz run (slow): 10,000 mutated FakeChain records through validation, expansion and generation, with a fixed
seed. Every record must end as valid pairs or as a `file:line: field: message` error; nothing may crash."""

import copy
import random

import orjson
import pytest
from conftest import SAMPLE
from test_properties import assert_valid_pairs, mutate

from fakeinstruct.chain.reader import read_chains
from fakeinstruct.chain.validate import validate_chains
from fakeinstruct.errors import FakeChainError
from fakeinstruct.generation import GenerateConfig, generate

SEED = 20_240_607
RECORDS = 10_000


@pytest.mark.slow
def test_fuzz_mutated_records_never_crash(tmp_path, capsys):
    rng = random.Random(SEED)
    bases = [orjson.loads(line) for line in (SAMPLE / "chains.jsonl").read_bytes().splitlines() if line.strip()]
    lines, non_blank = [], 0
    while non_blank < RECORDS:  # a mutation can leave a blank line, which the reader skips
        record = copy.deepcopy(rng.choice(bases))
        record["id"] = f"fuzz-{len(lines):05d}"  # a mutation may still clash ids: the reader must report that too
        lines.append(mutate(record, rng))
        non_blank += bool(lines[-1].strip())
    path = tmp_path / "chains.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    # the images are the sample's: valid records are checked against real files, mutated paths against the root
    report = validate_chains(path, root=SAMPLE)
    assert report.total == non_blank
    assert all(isinstance(err, FakeChainError) and err.file == str(path) and err.line for err in report.errors)
    assert report.quarantine.read_bytes().count(b"\n") == report.rejected

    pairs = 0
    for line in read_chains(path, root=SAMPLE):
        if line.ok:
            pairs += assert_valid_pairs(line.chain)
    accepted, rejected = report.valid, report.rejected
    with capsys.disabled():
        print(f"\nfuzz (seed {SEED}): {non_blank} records, {accepted} accepted ({pairs} pairs), {rejected} rejected")
    assert accepted > 500 and rejected > 5000, (accepted, rejected)

    result = generate(
        GenerateConfig(
            chains=str(path), out=str(tmp_path / "out"), root=str(SAMPLE), file_format="jsonl", progress=False
        )
    )
    assert (result.records, result.rejected) == (accepted, rejected)
    assert result.pairs + result.duplicates == pairs
