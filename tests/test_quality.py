import json

from conftest import make_records, write_dataset

from fakeinstruct.cli import main
from fakeinstruct.generation import GenerateConfig, generate
from fakeinstruct.report.quality import measure


def generated(tmp_path, n=84):
    chains = write_dataset(tmp_path / "data", make_records(n, groups=21))
    out = tmp_path / "out"
    generate(GenerateConfig(chains=str(chains), out=str(out), file_format="jsonl", progress=False, shard_size=200))
    return out


def shard_files(out):
    manifest = json.loads((out / "manifest.json").read_text())
    return {name: out / e["path"] for name, e in manifest["shards"].items()}


def test_clean_output_passes_balance_duplicates_and_leakage(tmp_path):
    report = measure(generated(tmp_path))
    assert report["balance"] == {"attribute:Yes/No": 0.5, "detection:Fake/Real": 0.5, "detection:Yes/No": 0.5}
    assert report["exact_duplicates_left"] == 0
    assert report["leakage"] == {"images_in_several_splits": 0, "groups_in_several_splits": 0}
    assert report["checks"]["balance"] and report["checks"]["no_leakage"] and report["checks"]["no_duplicates"]
    # six distinct annotations cycled over 84 images: boilerplate the diversity checks must catch
    assert not report["checks"]["distinct_4"] and report["diversity"]["repetitive_answers"] > 0.3
    lengths = report["answer_words_length"]["explanation"]
    assert lengths["p5"] <= lengths["p50"] <= lengths["p95"]
    assert 0 < report["diversity"]["answers"]["distinct_2"] < report["diversity"]["answers"]["distinct_4"] <= 1


def test_duplicates_and_leakage_are_found(tmp_path):
    out = generated(tmp_path)
    files = shard_files(out)
    train = next(p for n, p in files.items() if n.startswith("train"))
    test = next(p for n, p in files.items() if n.startswith("test"))
    first = train.read_text().splitlines()[0]
    test.write_text(test.read_text() + first + "\n")  # a train row again, in the test split
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["shards"].values():
        if entry["path"] == str(test.relative_to(out)):
            entry["rows"] += 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    report = measure(out)
    assert report["exact_duplicates_left"] == 1
    assert report["leakage"]["images_in_several_splits"] == 1 and report["leakage"]["groups_in_several_splits"] == 1
    assert not report["checks"]["no_leakage"] and not report["checks"]["no_duplicates"]


def test_stats_command_writes_card_and_figure(tmp_path, capsys):
    out = generated(tmp_path)
    code = main(["stats", str(out)])
    assert code == 0
    stats = json.loads((out / "stats.json").read_text())
    assert "quality" in stats and stats["pairs"] == stats["quality"]["pairs"]
    assert (out / "stats.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (out / "README.md").read_text()
    assert "## Data quality" in card and "| answers distinct-4 |" in card
    strict = main(["stats", str(out), "--strict"])
    assert strict == (0 if all(stats["quality"]["checks"].values()) else 1)
