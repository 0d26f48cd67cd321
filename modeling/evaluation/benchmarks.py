"""Evaluation on a benchmark's own test set, scored the way its paper reports it, with what those reports lack.

``python scripts/evaluate.py --benchmark fakeclue|loki --model M --data ROOT --output_dir OUT`` reads the test set
from the benchmark's folder as downloaded, with the parsers ``fakeinstruct import`` uses
(:mod:`fakeinstruct.importers.fakeclue`, :mod:`fakeinstruct.importers.loki`: same labels, categories and per-record
errors), asks each question as the benchmark asks it, and reports:

- **FakeClue** (FakeVLM's paper, its ``scripts/eval.py``): accuracy and F1 (fake is the positive class) per category
  (``cate``) and overall; ROUGE-L and CSS of the generated explanation against the reference one. The question is
  the record's own human turn. An answer is read by keyword, the first "real" or "fake" as a whole word; FakeVLM's
  script reads its first sentence and **draws a random label** when neither word is there: here such an answer is
  counted wrong and reported (``unparsed``).
- **LOKI** judgement (LOKI's ``lm_evaluate``): each question with LOKI's suffix "Answer with yes or no.", accuracy
  per category and overall, and LOKI's own aggregate: per category the mean of the accuracies on its fake and its
  real images, overall their average weighted by each category's fake questions. An answer counts when its first
  word is yes/no (y/n); LOKI's parser also takes "no" anywhere in the first four characters ("not sure" -> no),
  which is not copied: anything else is unparsed and wrong.

Added to both: the token-probability AUC of p(fake) (the answer word meaning fake against the other, one forward
pass, :mod:`modeling.scoring.probability`) and 95 % intervals for every number, from a bootstrap that resamples
source groups (:func:`modeling.evaluation.intervals.grouped_bootstrap`; ``interval_by`` ``group``: the image or
its source group, e.g. the video of FF++ frames, or ``category``). Predictions are cached in
``benchmark_predictions.jsonl``: a killed run resumes.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from modeling.scoring.probability import ClosedQuestion

logger = logging.getLogger(__name__)
BENCHMARKS = ("fakeclue", "loki")
METRICS_NAME, TABLE_NAME, PREDICTIONS_NAME = (
    "benchmark_metrics.json",
    "benchmark_results.md",
    "benchmark_predictions.jsonl",
)
FAKECLUE_QUESTION = "Does the image looks real/fake?"  # FakeClue's human turn, verbatim


@dataclass
class BenchmarkArguments:
    """Arguments of ``scripts/evaluate.py --benchmark``.

    Parameters:
        benchmark (`str`): ``fakeclue`` or ``loki``.
        model (`str`): Checkpoint folder or Hub repo id.
        data (`str`): The benchmark's root folder as downloaded (what ``fakeinstruct import`` reads).
        output_dir (`str`): Where benchmark_metrics.json, benchmark_results.md and the prediction cache go.
        split (`str`, *optional*, defaults to `"test"`): The split to evaluate (FakeClue has train and test).
        max_items (`int`, *optional*): Evaluate only the first N questions (smoke runs).
        batch_size (`int`, *optional*, defaults to `16`): Images per forward pass or ``generate`` call.
        max_new_tokens (`int`, *optional*, defaults to `256`): Generation cap for FakeClue's explanations.
        closed_max_new_tokens (`int`, *optional*, defaults to `16`): Generation cap for LOKI's yes/no answers.
        css (`bool`, *optional*, defaults to `True`): Compute CSS (needs the ``eval`` extra).
        embedding_model (`str`, *optional*): Sentence-transformers folder for CSS (default: all-MiniLM-L6-v2).
        interval_by (`str`, *optional*, defaults to `"group"`): What the bootstrap resamples: ``group`` (each image
            or its source group) or ``category``.
        resamples (`int`, *optional*, defaults to `2000`): Bootstrap resamples per interval.
        device (`str`, *optional*): Torch device.
        dtype (`str`, *optional*, defaults to `"auto"`): Model dtype.
    """

    benchmark: str = field(metadata={"help": "fakeclue or loki.", "choices": list(BENCHMARKS)})
    model: str = field(metadata={"help": "Checkpoint folder or Hub repo id."})
    data: str = field(metadata={"help": "The benchmark's root folder as downloaded."})
    output_dir: str = field(metadata={"help": "Folder for the metrics, the table and cached predictions."})
    split: str = field(default="test", metadata={"help": "Split to evaluate."})
    max_items: int | None = field(default=None, metadata={"help": "Evaluate only the first N questions."})
    batch_size: int = field(default=16, metadata={"help": "Images per forward pass / generate call."})
    max_new_tokens: int = field(default=256, metadata={"help": "Generation cap, FakeClue explanations."})
    closed_max_new_tokens: int = field(default=16, metadata={"help": "Generation cap, LOKI yes/no answers."})
    css: bool = field(default=True, metadata={"help": "Compute CSS with a sentence-embedding model."})
    embedding_model: str | None = field(default=None, metadata={"help": "Sentence-transformers folder for CSS."})
    interval_by: str = field(
        default="group", metadata={"help": "Bootstrap unit: group or category.", "choices": ["group", "category"]}
    )
    resamples: int = field(default=2000, metadata={"help": "Bootstrap resamples per interval."})
    device: str | None = field(default=None, metadata={"help": "Torch device."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto, float32 or bfloat16."})


@dataclass(frozen=True)
class BenchmarkItem:
    """One question of a benchmark, as its paper asks it."""

    key: str
    image: Path
    label: str  # real | fake
    category: str
    group: str  # the image or its source group: the bootstrap's unit
    question: str
    closed: ClosedQuestion  # positive word = the answer meaning fake
    reference: str | None = None  # FakeClue: the reference explanation


def fakeclue_items(root: Path, split: str = "test") -> tuple[list[BenchmarkItem], list]:
    from fakeinstruct.importers import fakeclue

    items, errors = [], []
    for _, path in fakeclue.split_files(root, [split]):
        for item in fakeclue.read_items(root, split, path):
            if not isinstance(item, fakeclue.Item):
                errors.append(item)
                continue
            question = item.question or FAKECLUE_QUESTION
            items.append(
                BenchmarkItem(
                    key=f"fakeclue.{split}.{item.index:06d}",
                    image=root / item.image,
                    label=item.label,
                    category=item.category or "(none)",
                    group=fakeclue.group_of(item.image) or item.image,
                    question=question,
                    closed=ClosedQuestion(question, "Fake", "Real"),
                    reference=item.explanation,
                )
            )
    if not items and not errors:
        raise FileNotFoundError(f"no FakeClue {split} split under {root} (expected data_json/{split}.json)")
    return items, errors


def loki_items(root: Path) -> tuple[list[BenchmarkItem], list]:
    from fakeinstruct.importers import loki

    path = loki.find_file(root, loki.JUDGEMENT_FILE)
    if path is None:
        raise FileNotFoundError(f"no LOKI {loki.JUDGEMENT_FILE} under {root} (expected data_json/image/)")
    items, errors = [], []
    for j in loki.read_judgements(path):
        if not isinstance(j, loki.Judgement):
            errors.append(j)
            continue
        question = f"{j.question}\n{loki.POST_PROMPT}"
        fake_word, real_word = ("Yes", "No") if j.asks_fake else ("No", "Yes")
        items.append(
            BenchmarkItem(
                key=f"loki.{j.index:06d}",
                image=root / j.image,
                label=j.label,
                category=j.category or "(none)",
                group=j.image,
                question=question,
                closed=ClosedQuestion(question, fake_word, real_word),
            )
        )
    return items, errors


_FIRST_WORD = re.compile(r"^\W*([A-Za-z]+)")


def parse_prediction(item: BenchmarkItem, text: str) -> str | None:
    """``"fake"``, ``"real"`` or None (unparsed: counted wrong), read as the module docstring says."""
    from modeling.evaluation.text_metrics import parse_closed

    if item.reference is not None:  # FakeClue: the first "real" or "fake" as a whole word
        said = parse_closed(text, "fake", "real")
        return said
    match = _FIRST_WORD.match(text)
    word = {"yes": "Yes", "y": "Yes", "no": "No", "n": "No"}.get(match.group(1).lower()) if match else None
    if word is None:
        return None
    return "fake" if word == item.closed.positive else "real"


def predict(detector, items: list[BenchmarkItem], args: BenchmarkArguments, cache_path: Path) -> dict[str, dict]:
    """Generated answer and token-probability p(fake) for every item, resuming from ``cache_path``."""
    from tqdm.auto import tqdm

    from modeling.detector import load_rgb
    from modeling.scoring.cache import ResultCache
    from modeling.scoring.generation import generate_answers
    from modeling.scoring.probability import prompt_text
    from modeling.scoring.split_scores import weights_fingerprint

    limit = args.max_new_tokens if args.benchmark == "fakeclue" else args.closed_max_new_tokens
    header = {"weights": weights_fingerprint(detector.source) or str(args.model), "benchmark": args.benchmark}
    header["max_new_tokens"] = limit
    cache = ResultCache(cache_path, header, key_field="key")
    todo = [item for item in items if item.key not in cache]
    with tqdm(total=len(todo), desc=args.benchmark, unit="question", disable=not todo) as bar:
        for start in range(0, len(todo), args.batch_size):
            batch = todo[start : start + args.batch_size]
            images = [load_rgb(item.image) for item in batch]
            prompts = [prompt_text(detector.processor, item.question) for item in batch]
            answers = generate_answers(detector.estimator, images, prompts, limit)
            scores = detector.estimator.score(images, [item.closed for item in batch])
            cache.add(
                {"key": item.key, "prediction": answer, "p_fake": float(p)}
                for item, answer, p in zip(batch, answers, scores.p, strict=True)
            )
            bar.update(len(batch))
    return {item.key: cache[item.key] for item in items}


def _accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(y == pred))


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    from modeling.evaluation.metrics import f1

    return f1(y, pred.astype(float))


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from modeling.evaluation.metrics import roc_auc

    return roc_auc(y, p)


def _mean(_: np.ndarray, values: np.ndarray) -> float:
    return float(np.mean(values))


def _balanced(y: np.ndarray, pred: np.ndarray) -> float:
    """LOKI's per-category number: mean of the accuracy on fakes and on reals (the fake one alone without reals)."""
    fake = y == 1
    if not fake.any():
        return float("nan")
    fake_acc = float(np.mean(pred[fake] == 1))
    return (fake_acc + float(np.mean(pred[~fake] == 0))) / 2 if (~fake).any() else fake_acc


def _group_metrics(rows: list[dict], args: BenchmarkArguments, names: list[str]) -> dict:
    from modeling.evaluation.intervals import grouped_bootstrap

    y = np.asarray([r["y"] for r in rows])
    pred = np.asarray([r["pred"] for r in rows])
    groups = [r["category" if args.interval_by == "category" else "group"] for r in rows]
    columns: dict[str, tuple[Callable, np.ndarray]] = {
        "accuracy": (_accuracy, pred),
        "f1": (_f1, pred),
        "auc": (_auc, np.asarray([r["p_fake"] for r in rows])),
        "loki_accuracy": (_balanced, pred),
        "rouge_l": (_mean, np.asarray([r.get("rouge_l", np.nan) for r in rows])),
        "css": (_mean, np.asarray([r.get("css", np.nan) for r in rows])),
    }
    out = {"n": len(rows), "n_fake": int(y.sum()), "unparsed": int(sum(r["unparsed"] for r in rows))}
    for name in names:
        metric, values = columns[name]
        out[name] = grouped_bootstrap(metric, y, values, groups, resamples=args.resamples).as_dict()
    return out


def score(items: list[BenchmarkItem], predictions: dict[str, dict], args: BenchmarkArguments, similarity) -> dict:
    """The benchmark's metrics, overall and per category, each with its interval."""
    from modeling.evaluation.text_metrics import rouge_l

    rows = []
    for item in items:
        said = parse_prediction(item, predictions[item.key]["prediction"])
        y = int(item.label == "fake")
        # an unparsed answer is wrong: predicted as the opposite of the truth
        pred = (1 - y) if said is None else int(said == "fake")
        rows.append(
            {
                "y": y,
                "pred": pred,
                "unparsed": said is None,
                "p_fake": predictions[item.key]["p_fake"],
                "category": item.category,
                "group": item.group,
            }
        )
    if args.benchmark == "fakeclue":
        texts = [predictions[item.key]["prediction"] for item in items]
        refs = [item.reference or "" for item in items]
        for row, value in zip(rows, rouge_l(texts, refs), strict=True):
            row["rouge_l"] = float(value)
        if similarity is not None:
            for row, value in zip(rows, similarity(texts, refs), strict=True):
                row["css"] = float(value)
        names = ["accuracy", "f1", "auc", "rouge_l"] + (["css"] if similarity is not None else [])
    else:
        names = ["accuracy", "loki_accuracy", "auc"]
    by_category: dict[str, list[dict]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row)
    result = {
        "overall": _group_metrics(rows, args, [n for n in names if n != "loki_accuracy"]),
        "per_category": {c: _group_metrics(r, args, names) for c, r in sorted(by_category.items())},
    }
    if args.benchmark == "loki":  # LOKI's total: the categories' numbers weighted by their fake questions
        weights = {c: m["n_fake"] for c, m in result["per_category"].items()}
        values = {c: m["loki_accuracy"]["value"] for c, m in result["per_category"].items()}
        used = {c: w for c, w in weights.items() if w and values[c] is not None}
        total = sum(used.values())
        result["overall"]["loki_accuracy"] = sum(values[c] * w for c, w in used.items()) / total if total else None
    return result


def _cell(value) -> str:
    if isinstance(value, dict):
        from modeling.evaluation.intervals import Interval

        return Interval(**value).text()
    return "n/a" if value is None else f"{value:.3f}"


def markdown(metrics: dict) -> str:
    """The results as a markdown table: one row per category, then the overall one."""
    names = [n for n in ("accuracy", "f1", "loki_accuracy", "auc", "rouge_l", "css") if n in metrics["overall"]]
    lines = [
        f"# {metrics['benchmark']} ({metrics['split']}): {metrics['model']}",
        "",
        "| category | n | unparsed | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for category, m in [*metrics["per_category"].items(), ("**overall**", metrics["overall"])]:
        cells = [_cell(m.get(n)) for n in names]
        lines.append(f"| {category} | {m['n']} | {m['unparsed']} | " + " | ".join(cells) + " |")
    lines += ["", "Values with their 95 % interval over resampled groups; unparsed answers count as wrong."]
    if metrics["source_errors"]:
        lines.append(f"{len(metrics['source_errors'])} source records could not be read (see benchmark_metrics.json).")
    return "\n".join(lines) + "\n"


def evaluate_benchmark(args: BenchmarkArguments) -> dict:
    """Predict, score and write ``benchmark_metrics.json`` and ``benchmark_results.md`` to ``args.output_dir``."""
    from fakeinstruct.files import write_text
    from modeling.detector import FakeScopeDetector
    from modeling.evaluation.text_metrics import SentenceSimilarity

    if args.benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)}, got {args.benchmark!r}")
    root, out = Path(args.data), Path(args.output_dir)
    if args.benchmark == "fakeclue":
        items, errors = fakeclue_items(root, args.split)
    else:
        items, errors = loki_items(root)
    for err in errors:
        logger.warning("%s", err)
    items = items[: args.max_items]
    if not items:
        raise ValueError(f"no {args.benchmark} question could be read under {root}")
    logger.info("%d %s questions from %s", len(items), args.benchmark, root)
    out.mkdir(parents=True, exist_ok=True)
    detector = FakeScopeDetector.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size
    )
    predictions = predict(detector, items, args, out / PREDICTIONS_NAME)
    similarity = SentenceSimilarity(args.embedding_model) if args.css and args.benchmark == "fakeclue" else None
    metrics = {
        "benchmark": args.benchmark,
        "model": str(args.model),
        "data": str(root),
        "split": args.split if args.benchmark == "fakeclue" else "test",
        **score(items, predictions, args, similarity),
        "source_errors": [str(e) for e in errors],
        "arguments": asdict(args),
    }
    write_text(out / METRICS_NAME, json.dumps(metrics, indent=2) + "\n")
    write_text(out / TABLE_NAME, markdown(metrics))
    logger.info("wrote %s and %s", out / METRICS_NAME, out / TABLE_NAME)
    return metrics


def main(argv: list[str] | None = None) -> dict:
    """``scripts/evaluate.py --benchmark ...``: parse :class:`BenchmarkArguments` (YAML ``--config`` too), run."""
    from trl import TrlParser

    parser = TrlParser((BenchmarkArguments,), description=__doc__.splitlines()[0])
    (args,) = parser.parse_args_and_config(argv)
    return evaluate_benchmark(args)
