"""A contributor template that renders on the probe records but fails on some records of a real file: generate
leaves out only the pairs it cannot render, reports each (template file and field, record line and id) in the log,
stats.json and the dataset card, and goes on; ``--strict`` stops at the first instead."""

import json
import re
import shutil

import pytest
from conftest import SAMPLE

from fakeinstruct.cli import main
from fakeinstruct.errors import TemplateError
from fakeinstruct.generation import GenerateConfig, generate

CHAINS = SAMPLE / "chains.jsonl"
# the probe records' generators are "probe-gan" and "camera": the load-time check renders this template fine
PICKY = """\
name: explanation.picky
family: explanation
kind: free
fields: [generator, label, reasoning]
questions: ["Why?", "How can you tell?"]
answers:
  - "{% if generator == 'realesrgan-x4plus' %}{{ reasoning[99] }}{% endif %}Because it is {{ label }}."
  - "It is {{ label }}."
"""


def template_dir(tmp_path, broken: bool = True):
    folder = tmp_path / ("broken" if broken else "fixed") / "explanation"
    folder.mkdir(parents=True)
    text = PICKY if broken else PICKY.replace("reasoning[99]", "reasoning[0]")
    (folder / "picky.yaml").write_text(text, encoding="utf-8")
    return folder.parent


def run(tmp_path, name: str, templates, **kwargs):
    config = GenerateConfig(
        chains=str(CHAINS),
        out=str(tmp_path / name),
        template_dirs=[str(templates)],
        file_format="jsonl",
        progress=False,
        **kwargs,
    )
    return generate(config)


def rows(out) -> set[tuple[str, str, str]]:
    found = set()
    for path in sorted(out.glob("*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            found.add((row["chain_id"], row["template_id"], json.dumps(row["messages"])))
    return found


def records() -> dict[str, tuple[int, str]]:
    """id -> (line number, generator) of the sample's records."""
    lines = CHAINS.read_text(encoding="utf-8").splitlines()
    return {r["id"]: (n, r["source"]["generator"]) for n, r in enumerate(map(json.loads, lines), start=1)}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("failures")
    broken_dir = template_dir(tmp)
    broken = run(tmp, "out-broken", broken_dir)
    fixed = run(tmp, "out-fixed", template_dir(tmp, broken=False))
    return broken_dir, broken, fixed


def test_only_the_pairs_the_template_fails_on_are_left_out(outputs):
    _, broken, fixed = outputs
    kept, complete = rows(broken.out), rows(fixed.out)
    missing = complete - kept
    # the other templates' pairs, and this template's pairs on the other records, are exactly the same
    assert kept < complete
    assert len(missing) == broken.template_failures == fixed.pairs - broken.pairs > 0
    picky_first_answer = {
        r for r in complete if records()[r[0]][1] == "realesrgan-x4plus" and re.search(r"picky#q\d+a0\b", r[1])
    }
    assert missing == picky_first_answer
    assert any(r[1].startswith("multi_turn.") for r in missing), "no conversation was left out"


def test_failures_are_reported_with_template_field_record_line_and_id(outputs):
    broken_dir, broken, _ = outputs
    failures = json.loads((broken.out / "stats.json").read_text())["template_failures"]
    template = str(broken_dir / "explanation" / "picky.yaml")
    assert failures["by_template"] == {f"{template}: answers[0]": broken.template_failures}
    assert failures["pairs"] == broken.template_failures
    lines = records()
    assert failures["examples"]
    for example in failures["examples"]:
        assert (example["template"], example["field"]) == (template, "answers[0]")
        assert example["line"] == lines[example["id"]][0]
        assert lines[example["id"]][1] == "realesrgan-x4plus"
        assert example["error"] == "render failed: UndefinedError: list object has no element 99"
    assert [e["line"] for e in failures["examples"]] == sorted(e["line"] for e in failures["examples"])
    card = (broken.out / "README.md").read_text()
    assert f"{broken.template_failures} left out because their template failed on their record" in card


def test_a_clean_run_reports_no_failure_and_keeps_its_manifest_entries(outputs):
    _, _, fixed = outputs
    assert json.loads((fixed.out / "stats.json").read_text())["template_failures"] == {
        "pairs": 0,
        "by_template": {},
        "examples": [],
    }
    manifest = json.loads((fixed.out / "manifest.json").read_text())
    assert all("failures" not in entry for entry in manifest["shards"].values())


def test_same_output_and_report_with_two_workers_and_after_a_resume(outputs, tmp_path):
    broken_dir, broken, _ = outputs
    parallel = run(tmp_path, "parallel", broken_dir, workers=2)
    for name in ("manifest.json", "stats.json"):
        assert (parallel.out / name).read_bytes() == (broken.out / name).read_bytes(), name
    # other shards, same report: each shard keeps its earliest failures, the run the earliest of those
    small = run(tmp_path, "small-shards", broken_dir, shard_size=300)
    report = json.loads((broken.out / "stats.json").read_text())["template_failures"]
    assert json.loads((small.out / "stats.json").read_text())["template_failures"] == report
    assert len(json.loads((small.out / "manifest.json").read_text())["shards"]) > 6
    assert report["pairs"] > len(report["examples"]) == 10
    # a shard lost after the run is written again on the next one, failures and all
    resumed = tmp_path / "resumed"
    shutil.copytree(broken.out, resumed)
    manifest = json.loads((resumed / "manifest.json").read_text())
    failing = next(n for n, e in manifest["shards"].items() if e.get("failures"))
    (resumed / manifest["shards"][failing]["path"]).unlink()
    again = run(tmp_path, "resumed", broken_dir)
    assert again.resumed_shards == len(manifest["shards"]) - 1
    for name in ("manifest.json", "stats.json"):
        assert (resumed / name).read_bytes() == (broken.out / name).read_bytes(), name


def test_strict_stops_at_the_first_failure_naming_the_record(tmp_path):
    with pytest.raises(TemplateError) as info:
        run(tmp_path, "strict", template_dir(tmp_path), strict=True)
    err = info.value
    assert err.file.endswith("picky.yaml") and err.field == "answers[0]"
    line, record = int(err.message.split(" on line ")[1].split()[0]), err.message.split("record '")[1].split("'")[0]
    assert records()[record] == (line, "realesrgan-x4plus")
    assert err.message.endswith(f"on line {line} of {CHAINS})")


def test_cli_goes_on_and_says_what_it_left_out_or_stops_with_strict(tmp_path, capsys, caplog):
    templates = template_dir(tmp_path)
    argv = ["generate", str(CHAINS), "--templates", str(templates), "--no-progress", "--file-format", "jsonl"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "pairs left out: their template failed on their record (see stats.json)" in captured.out
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(w.startswith(f"{templates / 'explanation' / 'picky.yaml'}: answers[0] failed ") for w in warnings)
    assert main(["stats", str(tmp_path / "out")]) == 0
    assert "pairs were left out at generation, their template failing on their record" in capsys.readouterr().out
    assert main([*argv, "--out", str(tmp_path / "strict"), "--strict"]) == 2
    assert (
        "answers[0]: render failed: UndefinedError: list object has no element 99 (record '" in capsys.readouterr().err
    )
