"""Fit a checkpoint's calibration head on the calibration split and report before/after on the test split."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from modeling.calibration.head import METHODS, CalibrationHead

logger = logging.getLogger(__name__)
REPORT_NAME = "calibration_report.json"
DIAGRAM_NAME = "reliability_diagram.png"


@dataclass
class CalibrateArguments:
    """Arguments of ``scripts/calibrate.py``.

    Parameters:
        model (`str`):
            Checkpoint folder written by ``scripts/sft.py`` (a merged LoRA model too). The head is saved into its
            ``calibration/`` subfolder, together with ``detector_config.json`` (the prompts it was fitted with).
        data (`str`):
            FakeInstruct folder (``fakeinstruct generate`` output) with the calibration and test splits.
        calibration_split (`str`, *optional*, defaults to `"validation"`):
            Split the head is fitted on. Never the test split: the report would then flatter the head.
        test_split (`str`, *optional*, defaults to `"test"`):
            Split on which ECE and the other metrics are reported before and after calibration.
        method (`str`, *optional*, defaults to `"temperature"`):
            ``temperature`` (one parameter; the safe choice for a few hundred calibration images or fewer) or
            ``platt`` (slope and bias; also corrects a bias towards one answer, needs more data).
        batch_size (`int`, *optional*, defaults to `16`):
            Images per forward pass.
        output_dir (`str`, *optional*):
            Where the report and the reliability diagram go; defaults to the model folder.
        cache_dir (`str`, *optional*):
            Keep raw scores here (one JSONL per split) so that an interrupted run resumes.
        device (`str`, *optional*):
            Torch device; defaults to where the model loads (CPU here).
        dtype (`str`, *optional*, defaults to `"auto"`):
            Model dtype (``auto``, ``float32``, ``bfloat16``).
        score_formula (`str`, *optional*, defaults to `"logprob"`):
            How the answer words' tokens are scored: ``logprob`` (summed log-probabilities) or ``fakescope``
            (summed raw logits, as the FakeScope paper defines p_fake). Saved in ``detector_config.json``: the head is
            fitted on this formula's logits, and the detector keeps using it.
    """

    model: str = field(metadata={"help": "Checkpoint folder (scripts/sft.py output)."})
    data: str = field(metadata={"help": "FakeInstruct folder with the calibration and test splits."})
    calibration_split: str = field(default="validation", metadata={"help": "Split the head is fitted on."})
    test_split: str = field(default="test", metadata={"help": "Split the before/after metrics are reported on."})
    method: str = field(default="temperature", metadata={"help": f"One of {', '.join(METHODS)}."})
    batch_size: int = field(default=16, metadata={"help": "Images per forward pass."})
    output_dir: str | None = field(default=None, metadata={"help": "Report folder (default: the model folder)."})
    cache_dir: str | None = field(default=None, metadata={"help": "Cache raw scores here to resume."})
    device: str | None = field(default=None, metadata={"help": "Torch device."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto, float32 or bfloat16."})
    score_formula: str = field(
        default="logprob",
        metadata={"help": "Answer-word score: logprob (summed log-probs) or fakescope (raw logits)."},
    )


def _cache(args, split: str) -> Path | None:
    return Path(args.cache_dir) / f"scores-{split}.jsonl" if args.cache_dir else None


def calibrate(args: CalibrateArguments) -> dict:
    """Score both splits, fit and save the head, write the report and diagram; return the report."""
    from modeling.detector import FakeScopeDetector
    from modeling.evaluation.metrics import binary_metrics
    from modeling.evaluation.plots import reliability_diagram
    from modeling.scoring.split_images import split_images
    from modeling.scoring.split_scores import score_split

    if args.calibration_split == args.test_split:
        raise ValueError("calibration_split and test_split must differ: fitting on the test split flatters the head")
    if args.method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {args.method!r}")
    detector = FakeScopeDetector.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size, warn_uncalibrated=False
    )
    from modeling.scoring.probability import SCORE_FORMULAS

    if args.score_formula not in SCORE_FORMULAS:
        raise ValueError(f"score_formula must be one of {', '.join(SCORE_FORMULAS)}, got {args.score_formula!r}")
    detector.config.score_formula = detector.estimator.formula = args.score_formula
    logger.info("scoring the %r split of %s", args.calibration_split, args.data)
    held_out = score_split(
        detector, split_images(args.data, args.calibration_split), _cache(args, args.calibration_split)
    )
    logger.info("scoring the %r split of %s", args.test_split, args.data)
    test = score_split(detector, split_images(args.data, args.test_split), _cache(args, args.test_split))

    head = CalibrationHead(args.method).fit(held_out.logit, held_out.label)
    head.save_to_checkpoint(args.model)
    detector.config.save(args.model)
    calibrated = head.calibrate(test.logit)
    report = {
        "method": args.method,
        "weight": float(head.weight),
        "bias": float(head.bias),
        "calibration_split": {"name": args.calibration_split, **binary_metrics(held_out.label, held_out.p_raw)},
        "test_split": args.test_split,
        "before": binary_metrics(test.label, test.p_raw),
        "after": binary_metrics(test.label, calibrated),
        "arguments": asdict(args),
    }
    out = Path(args.output_dir or args.model)
    out.mkdir(parents=True, exist_ok=True)
    from fakeinstruct.files import write_text

    write_text(out / REPORT_NAME, json.dumps(report, indent=2) + "\n")
    reliability_diagram(
        test.label,
        {"raw": test.p_raw, f"calibrated ({args.method})": calibrated},
        out / DIAGRAM_NAME,
        title=f"Reliability on the {args.test_split} split ({len(test.label)} images)",
    )
    logger.info(
        "test split (%d images): AUC %s, ECE %.4f -> %.4f, NLL %.4f -> %.4f; head saved in %s",
        len(test.label),
        _fmt(report["before"]["auc"]),
        report["before"]["ece"],
        report["after"]["ece"],
        report["before"]["nll"],
        report["after"]["nll"],
        Path(args.model) / "calibration",
    )
    return report


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
