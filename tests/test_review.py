"""Blind review end to end, without a person: scripted terminal input, and a packet's decisions file."""

import io
import json
import sys

import pytest
from conftest import SAMPLE

from fakeinstruct.chain import FakeChain
from fakeinstruct.chain.verdict import evidence_decides
from fakeinstruct.cli import main
from fakeinstruct.drafting.draft import draft_manifest
from fakeinstruct.drafting.review import read_decisions
from fakeinstruct.errors import FakeChainError

# one camera crop and one GAN output of the sample
IMAGES = {"sample-0001": "real", "sample-0003": "fake"}


@pytest.fixture
def drafts(tmp_path):
    lines = [json.loads(line) for line in (SAMPLE / "manifest.jsonl").read_text().splitlines()]
    manifest = tmp_path / "manifest.jsonl"
    rows = []
    for item in lines:
        if item["id"] in IMAGES:
            assert item["label"] == IMAGES[item["id"]]
            source = {"generator": item["generator"], "family": item["generator_family"], "origin": "sample"}
            source |= {"license": item["license"], "group": item["source_author"]}
            rows.append({"id": item["id"], "image": item["file"], "label": item["label"], "source": source})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "drafts.jsonl"
    draft_manifest(SAMPLE, manifest, out, progress=False)
    return out


def run_terminal(monkeypatch, capsys, argv, keys: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(keys))
    code = main(argv)
    return code, capsys.readouterr().out


def test_terminal_review_of_two_drafts(drafts, tmp_path, monkeypatch, capsys):
    out = tmp_path / "chains.jsonl"
    argv = ["review", str(drafts), "--root", str(SAMPLE), "--out", str(out), "--reviewer", "Test Reviewer"]
    draft = [json.loads(line) for line in drafts.read_text().splitlines()]
    toggled = draft[0]["attributes"][0]
    keys = (
        "d\nsunlit sand with pale glints\n"  # describe the image
        "1\n"  # toggle attribute 1
        "s1 0.7\n"  # its severity
        "e2\nSoft, ragged rims along the glints, with no bright outline.\n"  # new evidence for attribute 2
        "f\nsmall crop\n"
        "\n"  # accept
        "r\n"  # own call: real
        "\n"  # second draft: accept as drafted
        "x\nu\n"  # a key that is no call is asked again; then unsure
    )
    code, screen = run_terminal(monkeypatch, capsys, argv, keys)
    assert code == 0
    # the reviewer never saw an id, a source or a word of the reasoning (which names the label)
    for record in draft:
        for hidden in (record["id"], record["source"]["group"], record["conclusion"][:40], record["reasoning"][-1]):
            assert hidden not in screen
    assert screen.count("image: ") == 2 and str(tmp_path / "chains.jsonl.images") in screen
    records = [FakeChain.model_validate_json(line) for line in out.read_text().splitlines()]
    assert [r.id for r in records] == ["sample-0001", "sample-0003"]
    first, second = records
    assert [r.label for r in records] == ["real", "fake"]  # the label stays what provenance says
    assert (first.provenance.reviewer_call, second.provenance.reviewer_call) == ("real", "unsure")
    assert first.provenance.blind and first.provenance.reviewed_by == "Test Reviewer"
    assert first.provenance.review_flags == ["small crop"]
    flipped = "anomalous" if toggled["verdict"] == "natural" else "natural"
    assert first.attributes[0].verdict == flipped
    assert first.attributes[0].severity == (0.7 if flipped == "anomalous" else None)
    assert first.attributes[1].evidence == "Soft, ragged rims along the glints, with no bright outline."
    assert first.attributes[1].measurement == draft[0]["attributes"][1]["evidence"]  # the machine's, kept
    assert first.reasoning[0] == "The image shows sunlit sand with pale glints."
    for record in records:  # the conclusion follows the verdicts by the fixed rule, whatever the call
        decides = evidence_decides(record.attributes, record.label)
        assert record.provenance.evidence_decides_label is decides
        assert record.conclusion.startswith("The evidence is inconclusive") is (not decides)


def test_terminal_review_stops_and_resumes(drafts, tmp_path, monkeypatch, capsys):
    out = tmp_path / "chains.jsonl"
    argv = ["review", str(drafts), "--root", str(SAMPLE), "--out", str(out)]
    code, screen = run_terminal(monkeypatch, capsys, argv, "\nf\nq\n")
    assert code == 0 and "stopped" in screen and not out.exists()
    log = tmp_path / "chains.jsonl.decisions.jsonl"
    assert [d.call for _, d in read_decisions(log)] == ["fake"]
    code, screen = run_terminal(monkeypatch, capsys, argv, "\nr\n")
    assert code == 0 and "1 of 2 drafts already reviewed" in screen
    calls = [json.loads(line)["provenance"]["reviewer_call"] for line in out.read_text().splitlines()]
    assert calls == ["fake", "real"]


def test_packet_hides_the_label_and_decisions_apply(drafts, tmp_path, capsys):
    packet = tmp_path / "packet"
    assert main(["review", str(drafts), "--root", str(SAMPLE), "--packet", str(packet)]) == 0
    items = [json.loads(line) for line in (packet / "items.jsonl").read_text().splitlines()]
    text = (packet / "items.jsonl").read_text()
    for hidden in ("sample-000", '"label"', "enhancement", "conclusion", "reasoning", "source", "group"):
        assert hidden not in text
    assert sorted(p.name for p in (packet / "images").iterdir()) == sorted(i["image"][7:] for i in items)
    key = json.loads((tmp_path / "packet.key.json").read_text())
    assert sorted(key.values()) == sorted(IMAGES)
    decisions = tmp_path / "decisions.jsonl"
    lines = [
        {"review_id": item["review_id"], "reviewer": "R", "call": "fake", "summary": "a crop",
         "attributes": {"noise": {"verdict": "anomalous", "evidence": "The flat areas are smooth.", "severity": 0.8}}}
        for item in items
    ]  # fmt: skip
    decisions.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "chains.jsonl"
    argv = ["review", str(drafts), "--root", str(SAMPLE), "--out", str(out), "--decisions", str(decisions)]
    assert main([*argv, "--key", str(tmp_path / "packet.key.json")]) == 0
    records = [FakeChain.model_validate_json(line) for line in out.read_text().splitlines()]
    for record in records:
        noise = next(a for a in record.attributes if a.name == "noise")
        assert (noise.verdict, noise.severity) == ("anomalous", 0.8)
        assert record.provenance.evidence_decides_label is (record.label == "fake")  # 0.8 points to fake
    assert records[1].enhancement and not records[0].enhancement  # advice on passing as real: fakes only
    # without the key the review ids mean nothing: an error naming the file and line
    with pytest.raises(FakeChainError, match="not in the packet's key") as info:
        from fakeinstruct.drafting.review import review_drafts

        review_drafts(drafts, SAMPLE, read_decisions(decisions), out, decisions_file=str(decisions))
    assert info.value.line == 1


def test_bad_decision_lines_name_file_line_and_field(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "reviewer": "R", "call": "fake"}\n{"id": "b", "reviewer": "R", "call": "maybe"}\n')
    with pytest.raises(FakeChainError) as info:
        read_decisions(path)
    assert (info.value.line, info.value.field) == (2, "call")
