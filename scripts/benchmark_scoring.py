#!/usr/bin/env python
"""Scoring speed: the token-probability estimator against generate-then-parse, on the same images and model.

    python scripts/benchmark_scoring.py --model outputs/demo/sft --images 192 --batch-size 16

Ours: one forward pass per batch, p_fake from the logits of "Fake"/"Real" at the answer position. Theirs (how
detectors without a score work): greedy ``generate()`` of the whole answer, until EOS or ``--max-new-tokens``,
then the first "real"/"fake" in the text. Both see the same prompt, images, batch size and left padding.
Agreement compares our argmax label with the parsed word, over the answers that parse.
Prints one JSON line at the end. Without ``--model`` a tiny LLaVA is built in a temporary folder and fine-tuned for
``--train-epochs`` on the sample's real-or-fake pairs (one template), so that its generated answers parse; with
``--train-epochs 0`` it stays untrained (its answers never parse: only the speed is measured).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import statistics
import tempfile
import time
from pathlib import Path

import torch

from fakeinstruct.arguments import HelpFormatter, both_spellings

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "fakeinstruct" / "data" / "sample"
SAMPLE_IMAGES = SAMPLE / "images"
DEMO_RECIPE = ROOT / "recipes" / "tiny-llava" / "sft" / "config_demo.yaml"
TEMPLATE = ROOT / "fakeinstruct" / "templates" / "detection" / "real_or_fake.yaml"
WORD = re.compile(r"\b(real|fake)\b", re.IGNORECASE)
logger = logging.getLogger("scripts.benchmark_scoring")


def parse_label(text: str) -> str | None:
    """The first "real" or "fake" in a generated answer, lower-cased; None when neither appears."""
    match = WORD.search(text)
    return match.group(1).lower() if match else None


def load_images(n: int) -> list:
    from modeling.detector import load_rgb

    paths = sorted(SAMPLE_IMAGES.glob("*.jpg"))
    return [load_rgb(paths[i % len(paths)]) for i in range(n)]


def tiny_model(work: Path, epochs: int) -> str:
    """The tiny LLaVA, fine-tuned for ``epochs`` on the sample's real-or-fake pairs when ``epochs`` > 0."""
    import shutil
    import subprocess
    import sys

    from fakeinstruct.cli import main as fakeinstruct
    from modeling.tiny.llava import build_tiny_llava

    base = build_tiny_llava(work / "tiny")
    if epochs <= 0:
        return str(base)
    templates = work / "templates" / "detection"
    templates.mkdir(parents=True)
    shutil.copy(TEMPLATE, templates)
    data = work / "data"
    argv = ["generate", str(SAMPLE / "chains.jsonl"), "--out", str(data), "--templates", str(work / "templates")]
    if fakeinstruct([*argv, "--no-builtin-templates", "--no-progress"]) != 0:
        raise SystemExit("benchmark_scoring: generating the training pairs failed")
    logger.info("fine-tuning the tiny model for %d epochs on %s", epochs, data)
    command = [sys.executable, str(ROOT / "scripts" / "sft.py"), "--config", str(DEMO_RECIPE)]
    command += ["--model_name_or_path", str(base), "--dataset_name", str(data), "--output_dir", str(work / "sft")]
    command += ["--num_train_epochs", str(epochs), "--do_eval", "false", "--log_level", "warning"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return str(work / "sft")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder (default: a tiny LLaVA, see --train-epochs)")
    parser.add_argument(
        *both_spellings("--train_epochs"), type=int, default=20, help="fine-tuning of the default tiny model"
    )
    parser.add_argument("--images", type=int, default=192, help="images to score (the sample's, cycled)")
    parser.add_argument(*both_spellings("--batch_size"), type=int, default=16)
    parser.add_argument(
        *both_spellings("--max_new_tokens"), type=int, default=64, help="generation cap for the parse baseline"
    )
    parser.add_argument("--device", help="torch device (default: cpu)")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each way, alternating (median kept)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    from modeling.detector import FakeScopeDetector
    from modeling.scoring.generation import generate_answers
    from modeling.scoring.probability import prompt_text

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or tiny_model(Path(tmp), args.train_epochs)
        dtype = getattr(torch, args.dtype)
        detector = FakeScopeDetector.from_pretrained(
            model_dir, device=args.device, dtype=dtype, batch_size=args.batch_size
        )
        question = detector.config.detection
        prompt = prompt_text(detector.processor, question.question)
        images = load_images(args.images)
        warm = images[: args.batch_size]
        detector.estimator.score(warm, question)
        generate_answers(detector.estimator, warm, [prompt] * len(warm), args.max_new_tokens)

        # alternate the two ways and keep each one's median: the machine's load drifts within a run
        ours_runs, theirs_runs = [], []
        for _ in range(args.repeats):
            scores, seconds = timed(lambda: detector.estimator.score(images, question))
            ours_runs.append(seconds)
            answers, seconds = timed(
                lambda: generate_answers(detector.estimator, images, [prompt] * len(images), args.max_new_tokens)
            )
            theirs_runs.append(seconds)
        ours_s, theirs_s = statistics.median(ours_runs), statistics.median(theirs_runs)

    ours_labels = ["fake" if p >= 0.5 else "real" for p in scores.p]
    parsed = [parse_label(a) for a in answers]
    pairs = [(o, p) for o, p in zip(ours_labels, parsed, strict=True) if p is not None]
    agree = sum(o == p for o, p in pairs)
    logger.info("example answers: %s", [a[:60] for a in answers[:3]])
    result = {
        "model": args.model or f"tiny LLaVA, {args.train_epochs} epochs on the sample's real-or-fake pairs",
        "device": str(detector.model.device),
        "dtype": args.dtype,
        "images": len(images),
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "repeats": args.repeats,
        "ours_seconds": round(ours_s, 4),
        "generate_seconds": round(theirs_s, 4),
        "ours_images_per_s": round(len(images) / ours_s, 2),
        "generate_images_per_s": round(len(images) / theirs_s, 2),
        "speedup": round(theirs_s / ours_s, 2),
        "parsed": len(pairs),
        "unparsed": len(images) - len(pairs),
        "agreement": round(agree / len(pairs), 4) if pairs else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
