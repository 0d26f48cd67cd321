#!/usr/bin/env python
"""Scoring speed: the token-probability estimator against generate-then-parse, on the same images and model.

    python scripts/benchmark_scoring.py --model outputs/demo/sft --images 192 --batch-size 16

Ours: one forward pass per batch, p_fake from the logits of "Fake"/"Real" at the answer position. Theirs (how
detectors without a score work): greedy ``generate()`` of the whole answer, until EOS or ``--max-new-tokens``,
then the first "real"/"fake" in the text. Both see the same prompt, images, batch size and left padding.
Agreement compares our argmax label with the parsed word, over the answers that parse.
Prints one JSON line at the end. Without ``--model`` an untrained tiny LLaVA is built in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_IMAGES = ROOT / "fakeinstruct" / "data" / "sample" / "images"
WORD = re.compile(r"\b(real|fake)\b", re.IGNORECASE)
logger = logging.getLogger("benchmark_scoring")


def parse_label(text: str) -> str | None:
    """The first "real" or "fake" in a generated answer, lower-cased; None when neither appears."""
    match = WORD.search(text)
    return match.group(1).lower() if match else None


def load_images(n: int) -> list:
    from modeling.detector import load_rgb

    paths = sorted(SAMPLE_IMAGES.glob("*.png"))
    return [load_rgb(paths[i % len(paths)]) for i in range(n)]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder (default: an untrained tiny LLaVA)")
    parser.add_argument("--images", type=int, default=192, help="images to score (the sample's, cycled)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64, help="generation cap for the parse baseline")
    parser.add_argument("--device", help="torch device (default: cpu)")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    from modeling.detector import FakeScopeDetector
    from modeling.generation import generate_answers
    from modeling.probability import prompt_text

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            from modeling.tiny import build_tiny_llava

            model_dir = str(build_tiny_llava(Path(tmp) / "tiny"))
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

        scores, ours_s = timed(lambda: detector.estimator.score(images, question))
        answers, theirs_s = timed(
            lambda: generate_answers(detector.estimator, images, [prompt] * len(images), args.max_new_tokens)
        )

    ours_labels = ["fake" if p >= 0.5 else "real" for p in scores.p]
    parsed = [parse_label(a) for a in answers]
    pairs = [(o, p) for o, p in zip(ours_labels, parsed, strict=True) if p is not None]
    agree = sum(o == p for o, p in pairs)
    logger.info("example answers: %s", [a[:60] for a in answers[:3]])
    result = {
        "model": model_dir if args.model else "untrained tiny LLaVA",
        "device": str(detector.model.device),
        "dtype": args.dtype,
        "images": len(images),
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
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
