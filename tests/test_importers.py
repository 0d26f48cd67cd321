"""``fakeinstruct import`` on few-record fixtures in each published layout: import -> validate -> generate, with the
labels and the datasets' own splits surviving; bad records rejected one by one with file, index and field."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from importer_fixtures import build_fakebench, build_fakeclue, build_genimage, build_loki, build_real_fake

from fakeinstruct.chain.validate import validate_chains
from fakeinstruct.cli import main
from fakeinstruct.errors import FakeInstructError
from fakeinstruct.generation import GenerateConfig, generate
from fakeinstruct.importers import ImportConfig, import_dataset


def records(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def pairs(out: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(out.glob("*/*.jsonl")) for line in path.read_text().splitlines()]


def output_splits(out: Path) -> dict[str, set[str]]:
    """chain id -> the output splits its pairs are in."""
    found: dict[str, set[str]] = {}
    for path in out.glob("*/*.jsonl"):
        for line in path.read_text().splitlines():
            found.setdefault(json.loads(line)["chain_id"], set()).add(path.parent.name)
    return found


def import_validate_generate(kind: str, root: Path, tmp_path: Path, **options) -> tuple[dict, list[dict]]:
    """The whole path; returns the imported records by id and the generated pairs (JSONL)."""
    chains = root / "chains.jsonl"
    assert main(["import", kind, str(root), "--out", str(chains), "--no-progress", *options.pop("argv", [])]) == 0
    report = validate_chains(chains, root=root)
    assert report.rejected == 0 and report.valid > 0, [str(e) for e in report.errors]
    config = GenerateConfig(
        chains=str(chains), out=str(tmp_path / "out"), file_format="jsonl", progress=False, **options
    )
    generate(config)
    return records(chains), pairs(tmp_path / "out")


def test_fakeclue_labels_and_splits_survive(tmp_path, capsys):
    root = tmp_path / "FakeClue"
    written = build_fakeclue(root)
    imported, rows = import_validate_generate("fakeclue", root, tmp_path, split_from="source.origin")
    assert "10 records" in capsys.readouterr().out
    by_image = {r["image"]: r for r in imported.values()}
    for split, items in written.items():
        for image, label, category in items:
            record = by_image[image]
            assert record["label"] == label
            assert record["source"]["origin"] == f"FakeClue/{split}/{category}"
            assert record["id"].startswith(f"fakeclue.{split}.")
    # the dataset's test records, and only those, form the test split; its train records fill train and validation
    for row in rows:
        assert row["label"] == imported[row["chain_id"]]["label"]
    splits = output_splits(tmp_path / "out")
    assert all(len(s) == 1 for s in splits.values())
    own = {i: r["source"]["origin"].split("/")[1] for i, r in imported.items()}
    assert {c for c, s in splits.items() if s == {"test"}} == {i for i, split in own.items() if split == "test"}
    assert {c for c, s in splits.items() if s <= {"train", "validation"}} == {
        i for i, v in own.items() if v == "train"
    }
    assert {s for v in splits.values() for s in v} == {"train", "validation", "test"}


def test_fakeclue_record_contents(tmp_path):
    root = tmp_path / "FakeClue"
    build_fakeclue(root, n_train=2, n_test=0)
    report = import_dataset(ImportConfig("fakeclue", str(root), str(root / "chains.jsonl"), progress=False))
    assert (report.records, report.rejected, report.drafted) == (2, 0, 0)
    fake, real = records(root / "chains.jsonl").values()
    assert fake["label"] == "fake" and real["label"] == "real"
    assert {a["name"]: a["verdict"] for a in fake["attributes"]} == {"texture": "anomalous", "edges": "anomalous"}
    assert all(a["verdict"] == "natural" for a in real["attributes"]) and real["attributes"]
    assert fake["conclusion"].startswith("This is a fake image.") and fake["conclusion"].endswith("generator.")
    assert fake["reasoning"][0] == "The image shows a stone wall beside a path."
    assert fake["source"]["license"].startswith("Apache-2.0")
    provenance = fake["provenance"]
    assert provenance["annotation"] == "machine" and provenance["evidence_decides_label"] is True
    assert (
        "attributes.verdict" in provenance["machine_fields"] and "quoted from the FakeClue" in provenance["drafted_by"]
    )
    assert provenance["label_source"].startswith("FakeClue data_json/train.json")
    summary = json.loads((root / "chains.import.json").read_text())
    assert summary["records"] == 2 and summary["per_label"] == {"fake": 1, "real": 1}


def test_fakeclue_bad_records_are_rejected_one_by_one(tmp_path, capsys):
    root = tmp_path / "FakeClue"
    build_fakeclue(root, n_train=6, n_test=0)
    train = root / "data_json" / "train.json"
    data = json.loads(train.read_text())
    data[1]["label"] = 2
    data[2]["image"] = "../outside.jpg"
    data[3]["image"] = "animal/real/missing.jpg"
    data[4]["conversations"][1]["value"] = "This is a real image. The lighting is natural."  # a fake says real
    data.append("not an object")
    train.write_text(json.dumps(data))
    chains = root / "chains.jsonl"
    assert main(["import", "fakeclue", str(root), "--out", str(chains), "--no-progress"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert sorted(line.split(": ")[0].rsplit(":", 1)[1] for line in err) == ["1", "2", "3", "4", "6"]
    assert f"{train}:1: label: label must be 0 (fake) or 1 (real), got 2" in err
    assert any(line.startswith(f"{train}:2: image") and "without '..'" in line for line in err)
    assert f"{train}:3: image: image file not found: train/animal/real/missing.jpg" in err
    assert any(line.startswith(f"{train}:4: conversations") and "says 'real'" in line for line in err)
    assert len(records(chains)) == 2
    rejected = [json.loads(line) for line in (root / "chains.rejected.jsonl").read_text().splitlines()]
    found = sorted((r["index"], r["field"] or "") for r in rejected)
    assert found == [(1, "label"), (2, "image"), (3, "image"), (4, "conversations"), (6, "")]
    assert main(["import", "fakeclue", str(root), "--out", str(chains), "--no-progress", "--strict"]) == 1
    train.write_text("[]")
    assert main(["import", "fakeclue", str(root), "--out", str(chains), "--no-progress"]) == 2  # nothing to import


def test_fakeclue_any_number_of_workers_gives_the_same_file(tmp_path):
    root = tmp_path / "FakeClue"
    build_fakeclue(root, n_train=8, n_test=4)
    outs = []
    for workers in (1, 2):
        out = root / f"chains-{workers}.jsonl"
        import_dataset(ImportConfig("fakeclue", str(root), str(out), workers=workers, progress=False))
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 12
    out = root / "test-only.jsonl"
    report = import_dataset(ImportConfig("fakeclue", str(root), str(out), splits=["test"], limit=2, progress=False))
    assert report.records == 2 and set(report.per_split) == {"test"}


def test_loki_labels_regions_and_utf16(tmp_path):
    root = tmp_path / "LOKI"
    labels = build_loki(root)
    imported, rows = import_validate_generate("loki", root, tmp_path, split_from="source.origin")
    by_image = {r["image"]: r for r in imported.values()}
    assert {image: r["label"] for image, r in by_image.items()} == {image: v[0] for image, v in labels.items()}
    for image, (_, category) in labels.items():
        expected = f"LOKI/test/{category}" if category else "LOKI/test"
        assert by_image[image]["source"]["origin"] == expected
    described = by_image["media_data/image/00000000-0000-5000-8000-000000000000.jpg"]
    regions = {a["name"]: a.get("region") for a in described["attributes"]}
    assert regions["implausibility"] == [10, 20, 41, 46]  # [10.5, 20.2, 30, 25.7] as x, y, w, h
    assert regions["distortion"] == [60, 60, 112, 112]  # clipped to the 112x112 image
    assert regions["lighting"] is None  # the global description has no region
    assert described["provenance"]["annotation"] == "human+machine"
    assert "conclusion" in described["provenance"]["machine_fields"]
    only_described = by_image["media_data/image/ffffffff-0000-5000-8000-000000000000.png"]
    assert only_described["label"] == "fake" and only_described["attributes"][0]["name"] == "shape"
    judged_only = [r for r in imported.values() if r["provenance"]["annotation"] == "machine"]
    assert len(judged_only) == 6 and all(r["provenance"]["label_source"].startswith("LOKI") for r in judged_only)
    assert {row["label"] for row in rows} == {"real", "fake"}
    assert all(imported[row["chain_id"]]["label"] == row["label"] for row in rows)
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["records"]["per_split"] == {
        "train": 0,
        "validation": 0,
        "test": 8,
    }
    summary = json.loads((root / "chains.import.json").read_text())
    assert summary["per_format"] == {"jpeg/fake": 3, "jpeg/real": 3, "png/fake": 1, "png/real": 1}
    assert summary["format_shortcut"] == {"accuracy_from_format": 0.5, "majority_baseline": 0.5, "flagged": False}


def test_loki_contradictions_and_missing_evidence(tmp_path):
    root = tmp_path / "LOKI"
    build_loki(root)
    path = root / "data_json" / "image" / "true_or_false.json"
    data = json.loads(path.read_text())
    data[1]["answer"] = "Yes"  # image 0 is fake: "taken from the real world?" -> Yes contradicts question_type
    data[3]["question_type"] = ""  # image 1 (real): the wording tells the polarity
    data[2]["answer"] = "Maybe"
    path.write_text(json.dumps(data))
    config = ImportConfig("loki", str(root), str(root / "c.jsonl"), missing_evidence="error", progress=False)
    report = import_dataset(config)
    messages = [str(e) for e in report.errors]
    assert any(m.startswith(f"{path}:1: answer: question_type says fake") for m in messages)
    assert any(m.startswith(f"{path}:2: answer: answer must be Yes or No") for m in messages)
    no_text = [m for m in messages if "no text that names a taxonomy attribute" in m]
    assert len(no_text) == 6  # judged-only images: rejected instead of drafted
    assert report.records == 2 and report.drafted == 0
    assert {r["label"] for r in records(root / "c.jsonl").values()} == {"fake"}


def test_fakebench_categories_map_onto_the_taxonomy(tmp_path):
    root = tmp_path / "FakeBench"
    labels = build_fakebench(root)
    imported, rows = import_validate_generate("fakebench", root, tmp_path)
    by_name = {Path(r["image"]).name: r for r in imported.values()}
    assert {name: r["label"] for name, r in by_name.items()} == labels
    glide = by_name["Glide-00000.jpg"]
    assert glide["source"]["generator"] == "Glide" and glide["source"]["family"] == "diffusion"
    assert glide["source"]["origin"] == "FakeBench/test/creature, photo"
    attributes = {a["name"]: a for a in glide["attributes"]}
    assert attributes["texture"]["evidence"] == "The fur texture is waxy and repetitive."
    assert attributes["lighting"]["verdict"] == "anomalous"
    assert by_name["proGAN-00002.jpg"]["source"]["family"] == "gan"
    assert {a["name"] for a in by_name["dalle3-00001.jpg"]["attributes"]} >= {"clarity"}  # from its FakeQA answer
    reals = [r for r in imported.values() if r["label"] == "real"]
    assert len(reals) == 2 and all(r["provenance"]["annotation"] == "machine" for r in reals)
    assert Counter(row["label"] for row in rows).keys() == {"real", "fake"}


def test_fakebench_unknown_category_and_wrong_folder(tmp_path):
    root = tmp_path / "FakeBench"
    build_fakebench(root)
    clue = root / "Evaluation" / "FakeClue.json"
    data = json.loads(clue.read_text())
    data[0]["telltale_categories"] = "texture, vibes"
    clue.write_text(json.dumps(data))
    (root / "FakeBench_images" / "fake_images" / "proGAN-00002.jpg").rename(
        root / "FakeBench_images" / "real_images" / "proGAN-00002.jpg"
    )
    report = import_dataset(ImportConfig("fakebench", str(root), str(root / "c.jsonl"), progress=False))
    messages = [str(e) for e in report.errors]
    assert f"{clue}:0: telltale_categories: telltale category 'vibes' has no alias in phrases.yaml" in messages
    assert any("labelled fake, but the image is in FakeBench_images/real_images/" in m for m in messages)
    assert report.records == 3


def test_genimage_tree(tmp_path):
    root = tmp_path / "GenImage"
    written = build_genimage(root)
    imported, rows = import_validate_generate(
        "folders", root, tmp_path, split_from="source.origin", argv=["--license", "CC-BY-NC-SA-4.0", "--workers", "2"]
    )
    by_image = {r["image"]: r for r in imported.values()}
    assert set(by_image) == set(written)
    for image, (label, split, generator) in written.items():
        record = by_image[image]
        assert record["label"] == label
        assert record["source"]["origin"] == f"GenImage/{'test' if split == 'val' else split}"  # no test folder
        assert record["source"]["generator"] == (generator if label == "fake" else "camera")
        assert record["source"]["license"] == "CC-BY-NC-SA-4.0"
        assert record["provenance"]["annotation"] == "machine"
    assert by_image["ADM/train/ai/img_0000.jpg"]["source"]["family"] == "diffusion"
    own = {i: r["source"]["origin"].split("/")[1] for i, r in imported.items()}
    splits = output_splits(tmp_path / "out")
    assert {c for c, s in splits.items() if s == {"test"}} == {i for i, split in own.items() if split == "test"}
    assert all(imported[row["chain_id"]]["label"] == row["label"] for row in rows)
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["records"]["per_split"]["test"] == 8


def test_plain_real_fake_folders_need_ratio_splits(tmp_path):
    root = tmp_path / "mine"
    written = build_real_fake(root)
    (root / "notes").mkdir()
    (root / "notes" / "cover.jpg").write_bytes((root / "real" / "real_0.jpg").read_bytes())
    chains = root / "chains.jsonl"
    config = ImportConfig("folders", str(root), str(chains), generator="my-gan", progress=False)
    report = import_dataset(config)
    assert report.records == 4 and report.rejected == 1 and "no label folder" in str(report.errors[0])
    imported = records(chains)
    assert {r["image"]: r["label"] for r in imported.values()} == written
    assert {r["source"]["origin"] for r in imported.values()} == {"mine"}
    assert {r["source"]["generator"] for r in imported.values() if r["label"] == "fake"} == {"my-gan"}
    out = tmp_path / "out"
    with pytest.raises(FakeInstructError, match="4 record\\(s\\) name no split"):
        generate(GenerateConfig(chains=str(chains), out=str(out), split_from="source.origin", progress=False))
    assert generate(GenerateConfig(chains=str(chains), out=str(out), progress=False, overwrite=True)).records == 4
