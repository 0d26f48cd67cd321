"""Evaluation: keyword parsing without fallback, metrics by hand, a resumable end-to-end run on the sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modeling.evaluation.items import EvalItem, eval_items
from modeling.evaluation.run import closed_metrics, evaluate
from modeling.evaluation.text_metrics import SentenceSimilarity, parse_closed, rouge_l
from modeling.scoring.probability import ClosedQuestion


@pytest.mark.parametrize(
    ("text", "positive", "negative", "expected"),
    [
        ("Fake. The texture is too smooth.", "Fake", "Real", "Fake"),
        ("This looks real to me, not fake.", "Fake", "Real", "Real"),
        ("yes, it is AI-generated", "Yes", "No", "Yes"),
        ("I cannot tell.", "Fake", "Real", None),
        ("Nothing unusual", "No", "Yes", None),  # "No" only as a whole word
        ("B. Real photograph", "A", "B", "B"),
        ("(A) AI-generated image", "A", "B", "A"),
        ("a cat on a sofa", "A", "B", None),  # letters are read at the start, in capitals
        ("C", "A", "B", None),
    ],
)
def test_parse_closed_has_no_fallback(text, positive, negative, expected):
    assert parse_closed(text, positive, negative) == expected


def _item(key: str, answer_word: str) -> EvalItem:
    return EvalItem(
        key=key,
        task="detection",
        template_id="t",
        label="fake" if answer_word == "Fake" else "real",
        generator="g",
        image=None,
        messages=[],
        reference=answer_word,
        closed=ClosedQuestion("Real or fake?", "Fake", "Real"),
        answer_word=answer_word,
    )


def test_closed_metrics_count_unparsed_answers_as_wrong():
    items = [_item("a", "Fake"), _item("b", "Fake"), _item("c", "Real"), _item("d", "Real")]
    predictions = {
        "a": {"prediction": "Fake.", "p_positive": 0.9},  # right
        "b": {"prediction": "no idea", "p_positive": 0.6},  # unparsed: a missed fake
        "c": {"prediction": "Fake", "p_positive": 0.4},  # wrong: a false alarm
        "d": {"prediction": "hmm", "p_positive": 0.2},  # unparsed: counted as a false alarm
    }
    m = closed_metrics(items, predictions)
    assert m["n"] == 4 and m["unparsed"] == 2
    assert m["accuracy"] == 0.25
    # tp=1 (a), fn=1 (b), fp=2 (c, d): F1 = 2*1 / (2*1 + 1 + 2)
    assert m["f1"] == pytest.approx(2 / 5)
    assert m["token_probability"]["auc"] == 1.0  # the probabilities themselves rank perfectly


def test_rouge_l_and_css():
    refs = ["The lighting is inconsistent with the shadows.", "A real photograph taken with a camera."]
    assert rouge_l(refs, refs).tolist() == [1.0, 1.0]
    assert rouge_l(["zebra quantum"], refs[:1])[0] == 0.0
    css = SentenceSimilarity()
    same = css(refs, refs)
    np.testing.assert_allclose(same, [1.0, 1.0], atol=1e-5)
    related, unrelated = css(["The shadows do not match the light source.", "Bananas are yellow."], [refs[0], refs[0]])
    assert related > unrelated + 0.2
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        css(refs, refs[:1])


def test_eval_items_one_per_assistant_turn(sample_data):
    items = eval_items(sample_data, "test")
    by_task = {}
    for item in items:
        by_task.setdefault(item.task, []).append(item)
    assert all(i.closed is not None for i in by_task["detection"])
    assert all(i.closed is None for i in by_task["explanation"])
    multi = by_task["multi_turn"]
    assert {len(i.messages) for i in multi} == {1, 3, 5}  # history of previous reference turns
    assert all((i.closed is not None) == (len(i.messages) == 1) for i in multi)


def test_evaluate_writes_metrics_and_resumes(evaluated, sample_data, monkeypatch):
    args, metrics = evaluated
    out = Path(args.output_dir)
    for name in ("metrics.json", "results.md", "roc.png", "reliability_diagram.png", "predictions.jsonl"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["detector"]["raw"]["n"] == 60 and "calibrated" in saved["detector"]
    tasks = saved["by_task"]
    closed_n = sum(t["closed"]["n"] for t in tasks.values() if t["closed"])
    open_n = sum(t["open"]["n"] for t in tasks.values() if t["open"])
    assert closed_n + open_n == 48
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()[1:]]
    assert len(predictions) == 48
    items = {i.key: i for i in eval_items(sample_data, "test")}
    unparsed = sum(
        parse_closed(p["prediction"], items[p["key"]].closed.positive, items[p["key"]].closed.negative) is None
        for p in predictions
        if items[p["key"]].closed
    )
    assert sum(t["closed"]["unparsed"] for t in tasks.values() if t["closed"]) == unparsed
    table = (out / "results.md").read_text()
    assert "| model (raw) |" in table and "| baseline: spectrum |" in table and "| baseline: measurements |" in table
    # every AUC and accuracy carries an interval over the test split's source groups (the sample's authors)
    assert saved["groups"] == {"field": "source.group", "count": 6}
    for entry in (*saved["detector"].values(), *saved["baselines"].values()):
        for name in ("auc", "accuracy"):
            interval = entry["intervals"][name]
            assert interval["groups"] == 6 and interval["low"] <= entry[name] <= interval["high"]
    for name, result in saved["versus_baselines"].items():
        low = result["auc_difference"]["low"]
        assert result["beats"] == (low > 0)
        assert (f"**beats** the {name} baseline" in table) == result["beats"]

    calls = []
    import modeling.scoring.generation

    original = modeling.scoring.generation.generate_answers
    monkeypatch.setattr(
        modeling.scoring.generation, "generate_answers", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    again = evaluate(args)
    assert calls == []  # everything came from the prediction cache
    assert again["by_task"] == metrics["by_task"]
