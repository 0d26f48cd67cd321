"""The phrases that map source text onto the taxonomy (data, extendable, validated), the source.origin convention,
and ``generate --split_from``: a dataset's own split kept, validation carved from its train split."""

from __future__ import annotations

import json

import pytest
from conftest import make_records, write_dataset

from fakeinstruct.chain.origin import make_origin, split_named_in
from fakeinstruct.cli import main
from fakeinstruct.errors import FakeInstructError
from fakeinstruct.generation import GenerateConfig, generate
from fakeinstruct.generation.plan import own_split
from fakeinstruct.importers.common import ImportReport, generator_family, make_id, read_json
from fakeinstruct.importers.phrases import load_phrases, sentences


@pytest.mark.parametrize(
    ("sentence", "default", "expected"),
    [
        ("The texture is overly smooth and repetitive.", None, [("texture", "anomalous")]),
        ("The fur texture is detailed and natural.", None, [("texture", "natural")]),
        ("The edges are clean, with no halos.", None, [("edges", "natural")]),  # a negated anomaly phrase
        ("The lighting does not look natural.", None, [("lighting", "anomalous")]),  # a negated natural cue
        ("There are no visible artifacts in the shadows.", None, [("lighting", "natural")]),
        ("Despite an authentic look, odd lighting gives it away.", None, [("lighting", "anomalous")]),
        ("The image shows a dog with its paws in the sand.", None, []),  # a description is not evidence
        ("The houses are sticking to each other.", "anomalous", [("content_consistency", "anomalous")]),
        ("The roof of the house has an extra window.", "anomalous", []),  # no attribute named
        ("Unnatural reflections in the eyes.", None, [("reflection", "anomalous"), ("shape", "anomalous")]),
    ],
)
def test_match(sentence, default, expected):
    assert load_phrases().match(sentence, default) == expected


def test_sentences_and_aliases():
    text = "Sure, here:\n1. The boundaries are uneven.\n- Gaps, e.g. Between lines. Too large! Next one."
    assert sentences(text) == [
        "Sure, here:",
        "The boundaries are uneven.",
        "Gaps, e.g. Between lines.",
        "Too large!",
        "Next one.",
    ]
    phrases = load_phrases()
    assert (
        phrases.alias("Light & Shadow") == "lighting" and phrases.alias("content  deficiency") == "content_consistency"
    )
    assert phrases.alias("vibes") is None


def test_phrases_are_extendable_and_validated(tmp_path, capsys):
    extra = tmp_path / "extra.yaml"
    extra.write_text("attributes:\n  - name: texture\n    anomalous: [brushstroke look]\naliases: {vibes: color}\n")
    phrases = load_phrases(extra)
    assert phrases.match("It has a brushstroke look.") == [("texture", "anomalous")]
    assert phrases.alias("vibes") == "color"
    assert load_phrases().match("It has a brushstroke look.") == []  # the built-in set is unchanged
    bad = tmp_path / "bad.yaml"
    bad.write_text("attributes:\n  - name: sparkle\n    keywords: [glitter]\n")
    with pytest.raises(FakeInstructError, match="unknown attribute 'sparkle'") as info:
        load_phrases(bad)
    assert info.value.file == str(bad)
    bad.write_text("attributes:\n  - name: texture\n    keywords: [a]\n    colour: [b]\n")
    with pytest.raises(FakeInstructError, match="Extra inputs are not permitted") as info:
        load_phrases(bad)
    assert info.value.field == "attributes[0].colour"
    assert main(["schema", "phrases"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "PhrasesSpec" and schema["additionalProperties"] is False


def test_helpers(tmp_path):
    assert make_origin("FakeClue", "train", "a/b") == "FakeClue/train/a b"
    assert split_named_in("FakeClue/val/animal") == "validation" and split_named_in("mine") is None
    assert split_named_in("test/x") is None  # the first part is the dataset's name
    assert own_split({"source": {"origin": "LOKI/test/doc"}}, "source.origin") == "test"
    assert own_split({"image": "train/cat/fake/1.jpg"}, "image") == "train"
    assert own_split({"id": "fakeclue.test.000001"}, "id") == "test"
    assert own_split({"source": {}}, "source.group") is None
    assert make_id("loki", "a b/c") == "loki.a-b-c" and len(make_id("x" * 300)) == 117
    assert [generator_family(n) for n in ("stable_diffusion_v_1_4", "BigGAN", "cogview2", "Deepfakes", "??")] == [
        "diffusion",
        "gan",
        "autoregressive",
        "face-swap",
        "other",
    ]
    report = ImportReport("loki", tmp_path, tmp_path / "c.jsonl")
    for image, label in [("a.png", "fake")] * 3 + [("b.jpg", "real")] * 2 + [("c.JPEG", "real"), ("d.jpg", "fake")]:
        report.count("LOKI/test/doc", label, True, image)
    assert report.summary()["per_format"] == {"jpeg/fake": 1, "jpeg/real": 3, "png/fake": 3}
    assert report.format_shortcut() == {"accuracy_from_format": 0.8571, "majority_baseline": 0.5714, "flagged": True}
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "utf-16-le"):
        path = tmp_path / f"{encoding}.json"
        path.write_bytes(json.dumps([{"desc": "é"}]).encode(encoding))
        assert read_json(path) == [{"desc": "é"}]


def _with_origins(tmp_path, origins: list[str], groups: int | None = None):
    records = make_records(len(origins), groups=groups)
    for record, value in zip(records, origins, strict=True):
        record["source"]["origin"] = value
    return write_dataset(tmp_path / "data", records)


def _splits(out) -> dict[str, str]:
    rows = {}
    for path in out.glob("*/*.jsonl"):
        for line in path.read_text().splitlines():
            rows.setdefault(json.loads(line)["chain_id"], set()).add(path.parent.name)
    assert all(len(s) == 1 for s in rows.values())
    return {chain: s.pop() for chain, s in rows.items()}


def test_split_from_keeps_the_test_split_and_carves_validation(tmp_path):
    origins = ["D/train"] * 30 + ["D/test"] * 10
    chains = _with_origins(tmp_path, origins)
    config = GenerateConfig(
        chains=str(chains), out=str(tmp_path / "out"), file_format="jsonl", split_from="source.origin", progress=False
    )
    result = generate(config)
    splits = _splits(tmp_path / "out")
    assert {c for c, s in splits.items() if s == "test"} == {f"rec-{i:04d}" for i in range(30, 40)}
    per_split = result.stats["records"]["per_split"]
    assert (
        per_split["test"] == 10
        and per_split["validation"] in (3, 4)
        and per_split["train"] == 30 - per_split["validation"]
    )
    identity = json.loads((tmp_path / "out" / "fakeinstruct_config.json").read_text())["identity"]
    assert identity["split_from"] == "source.origin"
    assert "Splits are the dataset's own" in (tmp_path / "out" / "README.md").read_text()
    # without the option the identity has no split_from key: folders written before it keep theirs
    plain = generate(GenerateConfig(chains=str(chains), out=str(tmp_path / "plain"), progress=False))
    assert "split_from" not in json.loads((plain.out / "fakeinstruct_config.json").read_text())["identity"]


def test_split_from_with_the_datasets_own_validation_and_a_shared_group(tmp_path, caplog):
    origins = ["D/train"] * 6 + ["D/val"] * 2 + ["D/test"] * 2
    # records 0 and 8 share a source group (make_records: group photo-{i % 8}): the dataset put them in two splits
    chains = _with_origins(tmp_path, origins, groups=8)
    config = GenerateConfig(
        chains=str(chains), out=str(tmp_path / "out"), file_format="jsonl", split_from="source.origin", progress=False
    )
    result = generate(config)
    assert result.stats["records"]["per_split"] == {"train": 6, "validation": 2, "test": 2}
    assert result.stats["records"]["dataset_split"]["records_sharing_a_group_across_splits"] == 4
    assert "share an image or source group with a record of another split" in caplog.text
    splits = _splits(tmp_path / "out")
    assert splits["rec-0000"] == "train" and splits["rec-0008"] == "test"


def test_split_from_refuses_records_without_a_split(tmp_path):
    chains = _with_origins(tmp_path, ["D/train", "D/test", "D"])
    config = GenerateConfig(chains=str(chains), out=str(tmp_path / "o"), split_from="source.origin", progress=False)
    with pytest.raises(FakeInstructError, match=r"1 record\(s\) name no split .* 'rec-0002' on line 3"):
        generate(config)
    with pytest.raises(SystemExit):
        main(["generate", str(chains), "--out", str(tmp_path / "o"), "--split-from", "source.license"])


def test_records_whose_text_does_not_decide_their_label_say_so():
    from fakeinstruct.chain import FakeChain
    from fakeinstruct.chain.taxonomy import default_taxonomy
    from fakeinstruct.importers.common import Entry, Passage, build_record

    def record(label, text):
        source = {"generator": "camera", "family": "real-camera", "origin": "D/test", "license": "x"}
        if label == "fake":
            source = {**source, "generator": "g", "family": "other"}
        entry = Entry("f.json", 3, "d.1", "img.jpg", label, source, "D f.json: label", "D", "the D text", "human")
        entry.passages = [Passage(text)]
        data = build_record(entry, load_phrases(), default_taxonomy(), None)
        return data, FakeChain.model_validate(data)  # valid FakeChain 1.1 whatever the verdicts say

    data, _ = record("real", "The shadows are inconsistent.")
    assert data["provenance"]["evidence_decides_label"] is False
    assert data["conclusion"].startswith("D labels this image a real photograph, although according to the D text")
    assert "conclusion" in data["provenance"]["machine_fields"]
    data, _ = record("fake", "The lighting is natural.")
    assert data["provenance"]["evidence_decides_label"] is False and "no trait is anomalous" in data["conclusion"]
    data, _ = record("fake", "The lighting is odd.")
    assert data["provenance"]["evidence_decides_label"] is True
    assert (
        data["conclusion"]
        == "The image is AI-generated: according to the D text, the lighting and shadows show generator traces."
    )
    assert data["provenance"]["annotation"] == "human+machine" and data["reasoning"] == ["The lighting is odd."]
    assert (
        build_record(Entry("f", 0, "d.2", "i.jpg", "real", {}, "l", "D"), load_phrases(), default_taxonomy(), None)
        is None
    )
