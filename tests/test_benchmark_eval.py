"""``scripts/evaluate.py --benchmark``: FakeClue and LOKI test sets scored as their papers do (keyword parsing with
no random fallback, per-category accuracy/F1, LOKI's balanced aggregate), with token-probability AUC and intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from importer_fixtures import build_fakeclue, build_loki

from modeling.evaluation.benchmarks import (
    BenchmarkArguments,
    fakeclue_items,
    loki_items,
    parse_prediction,
    score,
)


@pytest.fixture
def fakeclue_root(tmp_path):
    root = tmp_path / "FakeClue"
    build_fakeclue(root, n_train=2, n_test=6)
    return root


@pytest.fixture
def loki_root(tmp_path):
    root = tmp_path / "LOKI"
    build_loki(root)
    return root


def test_items_follow_the_benchmarks(fakeclue_root, loki_root):
    items, errors = fakeclue_items(fakeclue_root)
    assert len(items) == 6 and not errors
    assert items[0].question == "Does the image looks real/fake?" and items[0].reference.startswith("This is a fake")
    assert items[0].image.is_file() and items[0].label == "fake" and items[0].category == "animal"
    questions, errors = loki_items(loki_root)
    assert len(questions) == 14 and not errors  # every image asked both ways
    ask_fake, ask_real = questions[0], questions[1]
    assert ask_fake.question.endswith("Answer with yes or no.") and "<image>" not in ask_fake.question
    assert (ask_fake.closed.positive, ask_real.closed.positive) == ("Yes", "No")  # the answer meaning fake
    assert ask_fake.label == ask_real.label == "fake" and ask_fake.category == "animals"


def test_parsing_has_no_random_fallback(fakeclue_root, loki_root):
    clue = fakeclue_items(fakeclue_root)[0][0]
    assert parse_prediction(clue, "This is a fake image. The edges ...") == "fake"
    assert parse_prediction(clue, "Looks REAL to me, not fake.") == "real"
    assert parse_prediction(clue, "Hard to say.") is None
    ask_fake, ask_real = loki_items(loki_root)[0][:2]
    assert parse_prediction(ask_fake, "Yes, it is synthesized.") == "fake"
    assert parse_prediction(ask_real, "Yes.") == "real" and parse_prediction(ask_real, "no") == "fake"
    assert parse_prediction(ask_fake, "not sure") is None  # LOKI's own parser would read "no" here
    assert parse_prediction(ask_fake, "The image is real.") is None


def _args(benchmark, **kw):
    return BenchmarkArguments(benchmark=benchmark, model="m", data="d", output_dir="o", resamples=200, **kw)


def test_fakeclue_scores_per_category(fakeclue_root):
    items = fakeclue_items(fakeclue_root)[0]
    predictions = {
        item.key: {
            "prediction": item.reference if i != 1 else "no idea",
            "p_fake": 0.9 if item.label == "fake" else 0.1,
        }
        for i, item in enumerate(items)
    }
    metrics = score(items, predictions, _args("fakeclue", css=False), similarity=None)
    overall = metrics["overall"]
    assert overall["n"] == 6 and overall["unparsed"] == 1
    assert overall["accuracy"]["value"] == pytest.approx(5 / 6)
    assert overall["auc"]["value"] == 1.0
    assert overall["rouge_l"]["value"] < 1.0 and overall["rouge_l"]["low"] <= overall["rouge_l"]["value"]
    assert set(metrics["per_category"]) == {"animal", "scene", "object"}
    assert sum(m["n"] for m in metrics["per_category"].values()) == 6
    # item 1 (real, scene) was unparsed: counted as a false alarm
    assert metrics["per_category"]["scene"]["accuracy"]["value"] == 0.5
    assert metrics["per_category"]["scene"]["f1"]["value"] == pytest.approx(2 / 3)


def test_loki_aggregate_is_balanced_per_category(loki_root):
    items = loki_items(loki_root)[0]
    # answer "Yes" to everything: right on every "AI-generated?" question of a fake and "real?" question of a real
    predictions = {item.key: {"prediction": "Yes", "p_fake": 0.5} for item in items}
    metrics = score(items, predictions, _args("loki"), similarity=None)
    assert metrics["overall"]["accuracy"]["value"] == 0.5 and metrics["overall"]["auc"]["value"] == 0.5
    for category in ("animals", "sence", "doc"):
        m = metrics["per_category"][category]
        assert m["n"] == (6 if category == "doc" else 4) and m["loki_accuracy"]["value"] == 0.5
    assert metrics["overall"]["loki_accuracy"] == 0.5
    right = {
        item.key: {
            "prediction": "Yes" if item.closed.positive == ("Yes" if item.label == "fake" else "No") else "No",
            "p_fake": float(item.label == "fake"),
        }
        for item in items
    }
    metrics = score(items, right, _args("loki"), similarity=None)
    assert metrics["overall"]["accuracy"]["value"] == 1.0 and metrics["overall"]["auc"]["value"] == 1.0
    assert metrics["overall"]["loki_accuracy"] == 1.0


def _run_script(argv):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "evaluate.py"
    spec = importlib.util.spec_from_file_location("evaluate_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argv)


def test_benchmark_runs_end_to_end(tiny_model, fakeclue_root, loki_root, tmp_path):
    out = tmp_path / "fc"
    argv = ["--benchmark", "fakeclue", "--model", str(tiny_model), "--data", str(fakeclue_root)]
    argv += ["--output_dir", str(out), "--batch_size", "4", "--max_new_tokens", "6", "--resamples", "100"]
    _run_script(argv)
    metrics = json.loads((out / "benchmark_metrics.json").read_text())
    assert metrics["overall"]["n"] == 6 and 0 <= metrics["overall"]["unparsed"] <= 6
    assert set(metrics["overall"]) >= {"accuracy", "f1", "auc", "rouge_l", "css"}
    p = [json.loads(line)["p_fake"] for line in (out / "benchmark_predictions.jsonl").read_text().splitlines()[1:]]
    assert len(p) == 6 and all(0 < v < 1 for v in p) and np.std(p) > 0  # token probabilities, one per image
    assert "| **overall** | 6 |" in (out / "benchmark_results.md").read_text()
    before = (out / "benchmark_predictions.jsonl").read_text()
    _run_script(argv)  # resumed: nothing predicted again
    assert (out / "benchmark_predictions.jsonl").read_text() == before
    out = tmp_path / "loki"
    argv = ["--benchmark", "loki", "--model", str(tiny_model), "--data", str(loki_root), "--output_dir", str(out)]
    _run_script([*argv, "--batch_size", "6", "--closed_max_new_tokens", "3", "--resamples", "100"])
    metrics = json.loads((out / "benchmark_metrics.json").read_text())
    assert metrics["overall"]["n"] == 14 and set(metrics["per_category"]) == {"animals", "sence", "doc"}
    assert "loki_accuracy" in metrics["overall"] and metrics["split"] == "test"
