"""The fixed rule from verdicts to where the evidence points, and records that say when it does not decide them."""

import copy

import numpy as np
import pytest
from conftest import make_records, write_dataset
from pydantic import ValidationError

from fakeinstruct.chain import FakeChain
from fakeinstruct.chain.verdict import evidence_label
from fakeinstruct.drafting.regions import region
from fakeinstruct.generation import GenerateConfig, generate
from fakeinstruct.templating.probes import PROBES


def attrs(*severities):
    return [{"verdict": "anomalous", "severity": s} for s in severities] + [{"verdict": "natural", "severity": None}]


@pytest.mark.parametrize(
    ("severities", "points_to"),
    [((), "real"), ((0.2,), "real"), ((0.49,), "real"), ((0.5,), "fake"), ((0.3, 0.3), "fake"), ((None,), "fake")],
)
def test_rule(severities, points_to):
    assert evidence_label(attrs(*severities)) == points_to


def probe(name):
    return copy.deepcopy(next(p for p in PROBES if p["id"] == name))


def test_a_record_cannot_claim_evidence_it_does_not_have():
    record = probe("probe-fake-undecided")
    FakeChain.model_validate(record)
    record["provenance"]["evidence_decides_label"] = True
    with pytest.raises(ValidationError, match="point to 'real' and the label is 'fake'"):
        FakeChain.model_validate(record)
    decided = probe("probe-fake")
    decided["provenance"]["evidence_decides_label"] = False  # its edges and texture point to fake
    with pytest.raises(ValidationError, match="evidence_decides_label is false"):
        FakeChain.model_validate(decided)


def run(tmp_path, records, **kwargs):
    chains = write_dataset(tmp_path / "data", records)
    out = tmp_path / "out"
    result = generate(GenerateConfig(chains=str(chains), out=str(out), progress=False, file_format="jsonl", **kwargs))
    import json

    rows = [json.loads(line) for path in sorted(out.glob("*/*.jsonl")) for line in path.read_text().splitlines()]
    return result, rows


def test_undecided_records_keep_or_drop_their_reasoned_pairs(tmp_path):
    records = make_records(12)  # every sixth is a fake with no trace, every sixth a real with a strong one
    undecided = {r["id"] for r in records if r["provenance"].get("evidence_decides_label") is False}
    assert len(undecided) == 4
    _, kept_rows = run(tmp_path / "a", records)
    _, dropped_rows = run(tmp_path / "b", records, undecided="exclude")
    reasoned = ("explanation", "enhancement", "multi_turn")
    assert {r["task"] for r in kept_rows if r["chain_id"] in undecided} >= {"detection", *reasoned}
    assert {r["task"] for r in dropped_rows if r["chain_id"] in undecided} <= {"detection", "attribute"}
    assert [r for r in kept_rows if r["task"] not in reasoned or r["chain_id"] not in undecided] == dropped_rows
    # kept, they are phrased as inconclusive, never argued from the evidence
    for row in kept_rows:
        if row["chain_id"] in undecided and row["task"] == "explanation":
            answer = row["messages"][1]["content"][0]["text"]
            assert (
                "inconclusive" in answer
                or "does not settle" in answer
                or "cannot tell" in answer
                or ("does not decide" in answer)
            ), answer


def test_stats_report_blind_agreement_and_undecided_share(tmp_path):
    records = make_records(12)
    calls = ["fake", "real", "unsure", "fake"]
    for record in records:
        record["provenance"].pop("reviewer_call", None)
    for i, record in enumerate(records[:4]):
        record["provenance"]["reviewer_call"] = calls[i]
    result, _ = run(tmp_path, records)
    review = result.stats["records"]
    labels = [r["label"] for r in records[:4]]
    agree = sum(c == label for c, label in zip(calls, labels, strict=True) if c != "unsure")
    assert review["blind_review"] == {
        "records": 4,
        "unsure": 1,
        "agree_with_label": agree,
        "agreement": round(agree / 3, 4),
    }
    assert review["evidence_decides_label"] == {"true": 0, "false": 4, "unstated": 8, "share": 0.0}


def test_region_is_the_tile_where_the_trace_is_strongest():
    rng = np.random.default_rng(0)
    pixels = np.clip(128 + rng.normal(0, 4, (96, 96, 3)), 0, 255).astype(np.uint8)
    pixels[32:64, 64:96] = 128  # one grain-free tile: middle row, right column
    assert region(pixels, "noise") == [64, 32, 96, 64]
    assert region(pixels, "edges") is None  # read from the whole image
