"""Evaluate a checkpoint on a FakeInstruct split with the field's metrics; resumable through cached predictions.

- Closed-ended turns: the generated answer parsed by keyword as peers do (accuracy, F1), with no random fallback:
  an answer that names neither word counts as wrong and is reported; and the token-probability estimate of the
  same question (AUC, AP, ECE, Brier).
- Open-ended turns (explanation, attribute discussion, enhancement advice, later turns): ROUGE-L and CSS.
- The detector itself, image by image: raw and calibrated p_fake on the split (AUC, AP, accuracy, F1, ECE, Brier).
Breakdowns per task family, generator and label go to ``metrics.json`` and ``results.md``, with ROC and
reliability PNGs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from modeling.evaluation.items import EvalItem
from modeling.scoring.split_scores import weights_fingerprint

logger = logging.getLogger(__name__)
METRICS_NAME, TABLE_NAME, PREDICTIONS_NAME = "metrics.json", "results.md", "predictions.jsonl"
ROC_NAME, RELIABILITY_NAME = "roc.png", "reliability_diagram.png"


@dataclass
class EvaluateArguments:
    """Arguments of ``scripts/evaluate.py``.

    Parameters:
        model (`str`): Checkpoint folder or Hub repo id (with its ``calibration/`` head when calibrated).
        data (`str`): FakeInstruct folder in the ``trl`` format.
        output_dir (`str`): Where metrics.json, results.md, the PNGs and the prediction cache go.
        split (`str`, *optional*, defaults to `"test"`): The split to evaluate.
        tasks (`list[str]`, *optional*): Task families to evaluate (all when unset).
        max_items (`int`, *optional*): Evaluate only the first N turns (smoke tests).
        batch_size (`int`, *optional*, defaults to `16`): Rows per forward pass or ``generate`` call.
        max_new_tokens (`int`, *optional*, defaults to `128`): Generation cap for open-ended turns.
        closed_max_new_tokens (`int`, *optional*, defaults to `16`): Generation cap for closed-ended turns.
        css (`bool`, *optional*, defaults to `True`): Compute CSS (needs the ``eval`` extra).
        embedding_model (`str`, *optional*): Sentence-transformers folder for CSS (default: all-MiniLM-L6-v2).
        device (`str`, *optional*): Torch device.
        dtype (`str`, *optional*, defaults to `"auto"`): Model dtype.
        baselines (`bool`, *optional*, defaults to `True`): Fit the two baselines of
            :mod:`modeling.evaluation.baselines` on ``baseline_split`` and score them on ``split`` beside the model.
        baseline_split (`str`, *optional*, defaults to `"train"`): The split the baselines are fitted on.
    """

    model: str = field(metadata={"help": "Checkpoint folder or Hub repo id."})
    data: str = field(metadata={"help": "FakeInstruct folder (trl format)."})
    output_dir: str = field(metadata={"help": "Folder for metrics.json, results.md, PNGs and cached predictions."})
    split: str = field(default="test", metadata={"help": "Split to evaluate."})
    tasks: list[str] | None = field(default=None, metadata={"help": "Task families (all when unset)."})
    max_items: int | None = field(default=None, metadata={"help": "Evaluate only the first N turns."})
    batch_size: int = field(default=16, metadata={"help": "Rows per forward pass / generate call."})
    max_new_tokens: int = field(default=128, metadata={"help": "Generation cap, open-ended turns."})
    closed_max_new_tokens: int = field(default=16, metadata={"help": "Generation cap, closed-ended turns."})
    css: bool = field(default=True, metadata={"help": "Compute CSS with a sentence-embedding model."})
    embedding_model: str | None = field(default=None, metadata={"help": "Sentence-transformers folder for CSS."})
    device: str | None = field(default=None, metadata={"help": "Torch device."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto, float32 or bfloat16."})
    baselines: bool = field(
        default=True, metadata={"help": "Fit and score the spectrum and measurement baselines beside the model."}
    )
    baseline_split: str = field(default="train", metadata={"help": "Split the baselines are fitted on."})


def predict(detector, items: list[EvalItem], args: EvaluateArguments, cache_path: Path) -> dict[str, dict]:
    """Generated answer for every item and p(positive word) for the closed ones, resuming from ``cache_path``."""
    from tqdm.auto import tqdm

    from modeling.scoring.cache import ResultCache
    from modeling.scoring.generation import generate_answers
    from modeling.scoring.probability import conversation_prompt

    header = {
        "weights": weights_fingerprint(detector.source) or str(args.model),
        "split": args.split,
        "max_new_tokens": [args.max_new_tokens, args.closed_max_new_tokens],
    }
    cache = ResultCache(cache_path, header, key_field="key")
    todo = [item for item in items if item.key not in cache]
    if len(todo) < len(items):
        logger.info("%d of %d turns already predicted in %s", len(items) - len(todo), len(items), cache_path)
    size = args.batch_size
    batches = [
        group[i : i + size]
        for group in ([t for t in todo if t.closed], [t for t in todo if not t.closed])
        for i in range(0, len(group), size)
    ]
    estimator = detector.estimator
    with tqdm(total=len(todo), desc="evaluating", unit="turn", disable=not todo) as bar:
        for batch in batches:
            images = [item.image.open() for item in batch]
            prompts = [conversation_prompt(detector.processor, item.messages) for item in batch]
            closed = batch[0].closed is not None
            limit = args.closed_max_new_tokens if closed else args.max_new_tokens
            answers = generate_answers(estimator, images, prompts, limit)
            rows = [{"key": item.key, "prediction": answer} for item, answer in zip(batch, answers, strict=True)]
            if closed:
                scores = estimator.score(images, [item.closed for item in batch])
                for row, p in zip(rows, scores.p, strict=True):
                    row["p_positive"] = float(p)
            cache.add(rows)
            bar.update(len(batch))
    return {item.key: cache[item.key] for item in items}


def closed_metrics(items: list[EvalItem], predictions: dict[str, dict]) -> dict:
    """Keyword-parsed accuracy/F1 (unparsed = wrong) and token-probability metrics of closed turns."""
    from modeling.evaluation.metrics import binary_metrics, f1
    from modeling.evaluation.text_metrics import parse_closed

    truth, parsed_right, unparsed, p_pos = [], [], 0, []
    for item in items:
        q = item.closed
        said = parse_closed(predictions[item.key]["prediction"], q.positive, q.negative)
        positive = item.answer_word == q.positive
        truth.append(int(positive))
        unparsed += said is None
        # an unparsed answer is wrong: predicted as the opposite of the truth
        parsed_right.append(int(said == item.answer_word))
        p_pos.append(predictions[item.key]["p_positive"])
    y = np.asarray(truth)
    right = np.asarray(parsed_right)
    y_pred = np.where(right == 1, y, 1 - y)
    scores = binary_metrics(y, np.asarray(p_pos))
    return {
        "n": len(items),
        "unparsed": int(unparsed),
        "accuracy": float(right.mean()),
        "f1": f1(y, y_pred.astype(float)),
        "token_probability": {k: scores[k] for k in ("auc", "ap", "ece", "brier", "accuracy")},
    }


def open_scores(items: list[EvalItem], predictions: dict[str, dict], similarity) -> dict[str, dict]:
    """ROUGE-L (and CSS) per open-ended turn, computed once and then averaged per group."""
    from modeling.evaluation.text_metrics import rouge_l

    opened = [item for item in items if not item.closed]
    preds = [predictions[item.key]["prediction"] for item in opened]
    refs = [item.reference for item in opened]
    rouge = rouge_l(preds, refs)
    css = similarity(preds, refs) if similarity is not None and opened else None
    return {
        item.key: {"rouge_l": float(rouge[i]), **({"css": float(css[i])} if css is not None else {})}
        for i, item in enumerate(opened)
    }


def open_metrics(items: list[EvalItem], scores: dict[str, dict]) -> dict:
    result = {"n": len(items)}
    for name in scores[items[0].key]:
        result[name] = float(np.mean([scores[item.key][name] for item in items]))
    return result


def breakdown(items: list[EvalItem], predictions: dict[str, dict], scores: dict[str, dict], key) -> dict:
    """Closed and open metrics for each value of ``key(item)``."""
    groups: dict[str, list[EvalItem]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    out = {}
    for name, group in sorted(groups.items()):
        closed = [i for i in group if i.closed]
        opened = [i for i in group if not i.closed]
        out[name] = {
            "closed": closed_metrics(closed, predictions) if closed else None,
            "open": open_metrics(opened, scores) if opened else None,
        }
    return out


def with_intervals(metrics: dict, y: np.ndarray, p: np.ndarray, groups: list[str]) -> dict:
    """``metrics`` plus 95 % intervals of its AUC and accuracy that resample source groups."""
    from modeling.evaluation.intervals import grouped_bootstrap
    from modeling.evaluation.metrics import rank_accuracy, rank_auc

    intervals = {
        name: grouped_bootstrap(fn, y, p, groups).as_dict()
        for name, fn in (("auc", rank_auc), ("accuracy", rank_accuracy))
    }
    return {**metrics, "intervals": intervals}


def versus(y: np.ndarray, model: np.ndarray, baseline: np.ndarray, groups: list[str]) -> dict:
    """The model's AUC minus the baseline's, with its group-resampled interval: the model beats the baseline only
    when the whole interval lies above zero."""
    from modeling.evaluation.intervals import grouped_bootstrap
    from modeling.evaluation.metrics import rank_auc

    def difference(labels, both):
        return rank_auc(labels, both[:, 0]) - rank_auc(labels, both[:, 1])

    interval = grouped_bootstrap(difference, y, np.stack([model, baseline], axis=1), groups)
    return {"auc_difference": interval.as_dict(), "beats": interval.low is not None and interval.low > 0}


def detector_metrics(detector, args: EvaluateArguments, out: Path) -> dict:
    """Image-level metrics of the detector's raw and calibrated p_fake beside the two baselines, each with intervals
    that resample source groups; ROC and reliability PNGs."""
    from modeling.evaluation.baselines import baseline_scores
    from modeling.evaluation.metrics import binary_metrics
    from modeling.evaluation.plots import reliability_diagram, roc_plot
    from modeling.scoring.split_images import split_images
    from modeling.scoring.split_scores import score_split

    images = split_images(args.data, args.split)
    scores = score_split(detector, images, out / f"scores-{args.split}.jsonl")
    y, groups = scores.label, scores.group
    curves = {"raw": scores.p_raw}
    if detector.calibration is not None:
        curves["calibrated"] = detector.calibration.calibrate(scores.logit)
    result = {
        "detector": {name: with_intervals(binary_metrics(y, p), y, p, groups) for name, p in curves.items()},
        "groups": {"field": "source.group", "count": len(set(groups))},
    }
    if args.baselines:
        logger.info("fitting the baselines on the %r split", args.baseline_split)
        fitted = baseline_scores(split_images(args.data, args.baseline_split), images)
        result["baselines"] = {name: with_intervals(binary_metrics(y, p), y, p, groups) for name, p in fitted.items()}
        result["versus_baselines"] = {name: versus(y, scores.p_raw, p, groups) for name, p in fitted.items()}
        curves |= {f"baseline: {name}": p for name, p in fitted.items()}
    title = f"{args.split} split, {len(y)} images"
    roc_plot(y, curves, out / ROC_NAME, title=f"ROC, {title}")
    detector_curves = {k: v for k, v in curves.items() if not k.startswith("baseline")}
    reliability_diagram(y, detector_curves, out / RELIABILITY_NAME, title=f"Reliability, {title}")
    return result


def evaluate(args: EvaluateArguments) -> dict:
    from fakeinstruct.files import write_text
    from modeling.detector import FakeScopeDetector
    from modeling.evaluation.items import eval_items
    from modeling.evaluation.report import markdown_table
    from modeling.evaluation.text_metrics import SentenceSimilarity

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    detector = FakeScopeDetector.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size
    )
    items = eval_items(args.data, args.split, args.tasks)[: args.max_items]
    logger.info("%d turns from the %r split of %s", len(items), args.split, args.data)
    predictions = predict(detector, items, args, out / PREDICTIONS_NAME)
    similarity = SentenceSimilarity(args.embedding_model) if args.css else None
    scores = open_scores(items, predictions, similarity)
    metrics = {
        "model": str(args.model),
        "data": str(args.data),
        "split": args.split,
        **detector_metrics(detector, args, out),
        "by_task": breakdown(items, predictions, scores, lambda i: i.task),
        "by_generator": breakdown(items, predictions, scores, lambda i: i.generator),
        "by_label": breakdown(items, predictions, scores, lambda i: i.label),
        "arguments": asdict(args),
    }
    write_text(out / METRICS_NAME, json.dumps(metrics, indent=2) + "\n")
    write_text(out / TABLE_NAME, markdown_table(metrics))
    logger.info("wrote %s and %s", out / METRICS_NAME, out / TABLE_NAME)
    return metrics
