import hashlib
import json

import pytest
from conftest import make_records, write_dataset

from fakeinstruct.errors import FakeInstructError
from fakeinstruct.generation import GenerateConfig, generate

FAMILIES = {"detection", "explanation", "attribute", "enhancement", "multi_turn"}


def run(chains, out, **kwargs):
    return generate(GenerateConfig(chains=str(chains), out=str(out), progress=False, **kwargs))


def rows_of(out, ext="jsonl"):
    rows = []
    for path in sorted(out.glob(f"*/*.{ext}")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def content_hash(rows):
    return hashlib.sha256("\n".join(sorted(json.dumps(r, sort_keys=True) for r in rows)).encode()).hexdigest()


def test_every_family_and_metadata(dataset, tmp_path):
    result = run(dataset, tmp_path / "out", file_format="jsonl")
    rows = rows_of(tmp_path / "out")
    assert len(rows) == result.pairs > 0
    assert {r["task"] for r in rows} == FAMILIES
    for row in rows:
        for key in ("task", "template_id", "chain_id", "image_path", "label", "generator"):
            assert row[key], (key, row)
        messages = row["messages"]
        assert messages[0]["content"][0]["type"] == "image" and row["images"] == [row["image_path"]]
        # one images/ level (the chains' own images/ folder is not repeated) and one path convention per row
        assert row["image_path"].startswith("images/img-") and (tmp_path / "out" / row["image_path"]).is_file()
        assert "image" not in row  # TRL's collator would take it for the image
        assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2)
        assert not any("<image>" in block["text"] for m in messages for block in m["content"] if block["text"])
        answer = messages[1]["content"][0]["text"]
        if row["answer_word"] and row["task"] != "multi_turn":
            assert answer.split()[0].rstrip(".,:;!") == row["answer_word"]
            assert {row["positive_word"], row["negative_word"]} >= {row["answer_word"]}
    multi = [r for r in rows if r["task"] == "multi_turn"]
    assert multi and all(len(r["messages"]) >= 6 for r in multi)


def test_closed_detection_covers_both_polarities_and_choice(dataset, tmp_path):
    run(dataset, tmp_path / "out", file_format="jsonl", families=["detection"])
    rows = rows_of(tmp_path / "out")
    words = {(r["label"], r["answer_word"]) for r in rows}
    assert {("fake", "Yes"), ("real", "No"), ("fake", "No"), ("real", "Yes")} <= words
    choice = [r for r in rows if r["answer_word"] in ("A", "B")]
    assert choice, "no multiple-choice pair"
    # shuffled options: the fake option is A for some records and B for others
    assert {r["positive_word"] for r in choice} == {"A", "B"}
    for r in choice:
        question = r["messages"][0]["content"][1]["text"]
        assert f"{r['answer_word']}." in question or f"{r['answer_word']})" in question


def test_enhancement_advice_for_fakes_only(dataset, tmp_path):
    from fakeinstruct.chain.taxonomy import default_taxonomy

    fixes = [spec.advice.rstrip(".").lower() for spec in default_taxonomy()]
    run(dataset, tmp_path / "out", file_format="jsonl", families=["enhancement"])
    rows = rows_of(tmp_path / "out")
    assert {r["label"] for r in rows} == {"real", "fake"}
    for row in rows:
        answer = row["messages"][1]["content"][0]["text"].lower()
        gives_advice = any(fix in answer for fix in fixes) or "add uniform sensor grain" in answer
        # fakes get the chain's advice or the taxonomy's fix for each anomalous attribute; reals get none, and a fake
        # with nothing anomalous gets none either: the answer says there is no trace to remove
        nothing_to_fix = row["chain_id"].startswith("rec-") and "no trace in it to remove" in answer
        assert gives_advice == (row["label"] == "fake" and not nothing_to_fix), answer
        assert nothing_to_fix == (row["label"] == "fake" and "nothing anomalous" not in answer and not gives_advice)


@pytest.mark.parametrize("fmt", ["trl", "prompt-completion", "llava"])
def test_formats(dataset, tmp_path, fmt):
    run(dataset, tmp_path / "out", file_format="jsonl", format=fmt)
    rows = rows_of(tmp_path / "out")
    row = next(r for r in rows if r["task"] == "multi_turn")
    if fmt == "trl":
        assert len(row["messages"]) >= 4
    elif fmt == "prompt-completion":
        assert row["prompt"][0]["role"] == "user" and row["prompt"][-1]["role"] == "user"
        assert [m["role"] for m in row["completion"]] == ["assistant"]
    else:
        conv = row["conversations"]
        assert conv[0]["from"] == "human" and conv[0]["value"].startswith("<image>\n")
        assert sum("<image>" in turn["value"] for turn in conv) == 1
        # LLaVA's own image field, relative to the dataset folder as LLaVA's image_folder would be
        assert row["image"].startswith("images/img-") and (tmp_path / "out" / row["image"]).is_file()


def test_deterministic_across_workers_and_shard_sizes(dataset, tmp_path):
    one = run(dataset, tmp_path / "w1", file_format="jsonl", workers=1, shard_size=1000)
    two = run(dataset, tmp_path / "w2", file_format="jsonl", workers=2, shard_size=7)
    assert one.pairs == two.pairs
    assert content_hash(rows_of(tmp_path / "w1")) == content_hash(rows_of(tmp_path / "w2"))
    assert len(list((tmp_path / "w2").glob("train/*.jsonl"))) > 1
    run(dataset, tmp_path / "w3", file_format="jsonl", seed=1)
    assert content_hash(rows_of(tmp_path / "w3")) != content_hash(rows_of(tmp_path / "w1"))


def test_parquet_byte_identical_across_workers(dataset, tmp_path):
    run(dataset, tmp_path / "a", workers=1)
    run(dataset, tmp_path / "b", workers=2)
    for path in sorted((tmp_path / "a").glob("*/*.parquet")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


def test_splits_leak_free_in_output(dataset, tmp_path):
    run(dataset, tmp_path / "out", file_format="jsonl")
    records = {r["id"]: r for r in map(json.loads, dataset.read_text().splitlines())}
    split_of_group = {}
    for path in (tmp_path / "out").glob("*/*.jsonl"):
        for row in map(json.loads, path.read_text().splitlines()):
            group = records[row["chain_id"]]["source"]["group"]
            split_of_group.setdefault(group, set()).add(path.parent.name)
    assert all(len(s) == 1 for s in split_of_group.values())
    assert {s for v in split_of_group.values() for s in v} == {"train", "validation", "test"}


def test_side_files(dataset, tmp_path):
    result = run(dataset, tmp_path / "out")
    out = tmp_path / "out"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["pairs"] == result.pairs == sum(stats["per_task"].values()) == sum(stats["per_split"].values())
    identity = json.loads((out / "fakeinstruct_config.json").read_text())["identity"]
    assert identity["seed"] == 0 and len(identity["templates"]) == 16
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(e["rows"] for e in manifest["shards"].values()) == result.pairs
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "train/*.parquet" in card and str(result.pairs) in card


def test_changed_settings_are_refused_without_overwrite(dataset, tmp_path):
    first = run(dataset, tmp_path / "out")
    again = run(dataset, tmp_path / "out")  # same settings: nothing left to do
    assert again.resumed_shards == len(json.loads((tmp_path / "out" / "manifest.json").read_text())["shards"])
    assert again.pairs == first.pairs
    with pytest.raises(FakeInstructError, match="different seed"):
        run(dataset, tmp_path / "out", seed=3)
    with pytest.raises(FakeInstructError, match="different families"):
        run(dataset, tmp_path / "out", families=["detection"])
    assert run(dataset, tmp_path / "out", seed=3, overwrite=True).pairs > 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete")
    with pytest.raises(FakeInstructError, match=r"holds no fakeinstruct_config\.json"):
        run(dataset, foreign, overwrite=True)
    assert (foreign / "thesis.tex").exists()


def test_bad_records_are_skipped_not_fatal(tmp_path):
    chains = write_dataset(tmp_path / "data", make_records(8, groups=4), ["{broken", '{"id": 1}'])
    result = run(chains, tmp_path / "out")
    assert result.records == 8 and result.rejected == 2


def test_datasets_loads_parquet_output(dataset, tmp_path):
    import datasets
    from PIL import Image

    from fakeinstruct.loading import load_fakeinstruct

    run(dataset, tmp_path / "embed", images="embed")
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "embed"))
    assert set(ds) == {"train", "validation", "test"}
    assert isinstance(ds["train"][0]["images"][0], Image.Image)

    run(dataset, tmp_path / "rel")
    raw = datasets.load_dataset("parquet", data_dir=str(tmp_path / "rel"))
    assert raw["train"][0]["images"][0].startswith("images/")
    resolved = load_fakeinstruct(tmp_path / "rel", split="train")
    assert isinstance(resolved[0]["images"][0], Image.Image)
    assert resolved.num_rows == raw["train"].num_rows


def test_parallel_scan_reports_true_line_numbers_and_cross_range_duplicates(tmp_path, caplog):
    import pickle

    records = make_records(300, groups=60)
    lines = [json.dumps(r) for r in records]
    lines[10] = "{broken"
    lines[250] = json.dumps({**records[250], "label": "blurry"})
    lines[299] = json.dumps({**records[299], "id": records[3]["id"]})  # duplicate of a line in another range
    root = tmp_path / "data"
    write_dataset(root, records)
    chains = root / "chains.jsonl"
    chains.write_text("\n".join(lines) + "\n")
    with caplog.at_level("WARNING"):
        result = run(chains, tmp_path / "out", workers=2)
    assert result.records == 297 and result.rejected == 3
    messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(m.startswith(f"{chains}:11: (line): invalid JSON") for m in messages), messages
    assert any(m.startswith(f"{chains}:251: label:") for m in messages), messages
    assert any(m.startswith(f"{chains}:300: id: duplicate id 'rec-0003' (first on line 4)") for m in messages)
    err = pickle.loads(pickle.dumps(FakeInstructError("m", file="f", line=3, field="x")))
    assert str(err) == "f:3: x: m"


def test_records_whose_json_is_not_the_validated_one_are_rendered_from_the_validated_one(tmp_path):
    """Pass two trusts a record's JSON only when it is exactly the validated record's: text padded with spaces (which
    the schema strips) is rendered as the validated record says, not as the line says."""
    records = make_records(8)
    padded = json.loads(json.dumps(records))
    padded[0]["conclusion"] = "  " + padded[0]["conclusion"] + "  "
    padded[0]["attributes"][0]["evidence"] += "\t"
    padded[0]["reasoning"][0] = "\n" + padded[0]["reasoning"][0]
    run(write_dataset(tmp_path / "clean", records), tmp_path / "a", file_format="jsonl")
    run(write_dataset(tmp_path / "padded", padded), tmp_path / "b", file_format="jsonl")
    clean, dirty = rows_of(tmp_path / "a"), rows_of(tmp_path / "b")
    assert clean == dirty
    texts = [block["text"] for r in dirty for m in r["messages"] for block in m["content"] if block["text"]]
    assert any(records[0]["conclusion"] in text for text in texts)  # the conclusion is quoted, stripped
