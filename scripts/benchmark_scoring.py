#!/usr/bin/env python
"""Scoring throughput against its floor and against generating explanations, in one run, alternated.

    python scripts/benchmark_scoring.py --images 2048 --batch-size 16 --num-workers 2

Three ways over the same images and model, each timed ``--repeats`` times in turn (a, b, c, a, b, c, ...; medians):

(a) **detect**: ``fakescope detect``'s pipeline end to end (modeling.scoring.pipeline.detect_collection): image files
    decoded and resized in ``--num-workers`` DataLoader workers, one forward pass per batch, rows written to a fresh
    Parquet file. Model loading is not counted.
(b) **forward** (the floor): the same forward passes (``score_inputs``) on model inputs made beforehand, in memory.
(c) **explain** (FakeVLM's way): greedy ``generate()`` of the whole answer, up to ``--max-new-tokens`` (256, as
    FakeVLM's evaluation allows), then the first "real"/"fake" in the text; on the first ``--explain-images`` images,
    decoded beforehand (which favours it).

``ratio_to_forward`` = a/b in images/s (target >= 0.8 at batch 16 with 2 workers), ``speedup_vs_explain`` = a/c.
``loader_wait_share`` is the share of (a)'s time its model waited for a batch from the workers. ``batch_ms`` breaks one batch of (a) into its stages, run one after the other in this process: decode and resize
(workers, per image), collate (workers: stack, and normalise on CPU), inputs (model inputs on the device), forward,
rows. The machine's load
(1-minute average) is read before and after. Prints one JSON line at the end. Without ``--model`` a tiny LLaVA
(scripts/build_tiny_model.py's) is built in a temporary folder and fine-tuned for ``--train-epochs`` on the
sample's real-or-fake pairs so that its answers parse; ``--train-epochs 0`` keeps it untrained (its answers run to
the token cap and never parse).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
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


def image_files(folder: Path, n: int) -> list[Path]:
    """``n`` distinct files (the sample's JPEGs, cycled, hard-linked or copied) in ``folder``."""
    sources = sorted(SAMPLE_IMAGES.glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img-{i:06d}.jpg"
        try:
            os.link(sources[i % len(sources)], path)
        except OSError:
            shutil.copyfile(sources[i % len(sources)], path)
        paths.append(path)
    return paths


def tiny_model(work: Path, epochs: int) -> str:
    """The tiny LLaVA, fine-tuned for ``epochs`` on the sample's real-or-fake pairs when ``epochs`` > 0."""
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


def stage_ms(detector, paths: list[Path], batch_size: int, batches: int = 8) -> dict:
    """Median milliseconds per batch of each stage of the detect pipeline, run one after the other here."""
    import numpy as np

    from modeling.detector import load_rgb
    from modeling.scoring.preprocessing import BatchEncoder
    from modeling.scoring.probability import _sigmoid, prompt_text

    encoder = BatchEncoder.cached(detector.estimator)
    collate = encoder.collate
    question = detector.config.detection
    prompt, plan = prompt_text(detector.processor, question.question), detector.estimator.plan(question)
    times: dict[str, list[float]] = {k: [] for k in ("decode", "resize", "collate", "inputs", "forward", "rows")}
    for b in range(batches):
        chunk = [paths[(b * batch_size + i) % len(paths)] for i in range(batch_size)]
        images, t = timed(lambda chunk=chunk: [load_rgb(p) for p in chunk])
        times["decode"].append(t)
        prepared, t = timed(lambda images=images: [encoder.prepare(img) for img in images])
        times["resize"].append(t)
        batch, t = timed(lambda prepared=prepared: collate([(i, x, None) for i, x in enumerate(prepared)]))
        times["collate"].append(t)
        inputs, t = timed(lambda batch=batch: encoder.inputs(encoder.pixels(batch["data"]), prompt))
        times["inputs"].append(t)
        (pos, neg), t = timed(lambda inputs=inputs: detector.estimator.score_inputs(inputs, plan))
        times["forward"].append(t)
        _, t = timed(lambda pos=pos, neg=neg: detector.verdicts(pos - neg, _sigmoid(np.asarray(pos - neg))))
        times["rows"].append(t)
    return {k: round(1000 * statistics.median(v), 2) for k, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    add = parser.add_argument
    add("--model", help="checkpoint folder (default: a tiny LLaVA, see --train-epochs)")
    add(*both_spellings("--train_epochs"), type=int, default=20, help="fine-tuning of the default tiny model")
    add("--images", type=int, default=2048, help="image files to score (the sample's, cycled)")
    add(*both_spellings("--batch_size"), type=int, default=16, help="images per forward pass")
    add(*both_spellings("--num_workers"), type=int, default=2, help="DataLoader workers of (a)")
    add(*both_spellings("--max_new_tokens"), type=int, default=256, help="generation cap of (c)")
    add(*both_spellings("--explain_images"), type=int, default=256, help="images of (c)")
    add("--device", help="torch device (default: cpu)")
    add("--dtype", default="float32", help="float32 or bfloat16")
    add("--threads", type=int, help="torch CPU threads, all three ways (default: detect's, cores minus workers)")
    add("--repeats", type=int, default=5, help="timed runs of each way, alternating (median kept)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("modeling", "transformers", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from modeling.detector import FakeScopeDetector, load_rgb
    from modeling.scoring.collection import collect
    from modeling.scoring.generation import generate_answers
    from modeling.scoring.pipeline import detect_collection, scoring_threads
    from modeling.scoring.preprocessing import BatchEncoder
    from modeling.scoring.probability import prompt_text

    threads = args.threads or scoring_threads(args.num_workers)
    torch.set_num_threads(threads)  # the same for the three ways
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = args.model or tiny_model(tmp, args.train_epochs)
        detector = FakeScopeDetector.from_pretrained(
            model_dir, device=args.device, dtype=getattr(torch, args.dtype), batch_size=args.batch_size
        )
        estimator, question = detector.estimator, detector.config.detection
        prompt, plan = prompt_text(detector.processor, question.question), estimator.plan(question)
        paths = image_files(tmp / "images", args.images)
        collection = collect([str(tmp / "images")])
        # (b)'s inputs: the processor's own encoding of every batch, made beforehand
        batches = []
        for start in range(0, len(paths), args.batch_size):
            images = [load_rgb(p) for p in paths[start : start + args.batch_size]]
            batches.append(estimator.encode(images, [prompt] * len(images)))
        explain_images = [load_rgb(p) for p in paths[: args.explain_images]]
        mode = BatchEncoder.cached(estimator).mode

        def detect(run: int):
            out = tmp / f"scores-{run}.parquet"
            summary = detect_collection(
                detector, collection, output=out, num_workers=args.num_workers, progress=False, threads=threads
            )
            assert summary.scored == len(paths), summary
            return summary

        def forward():
            return [estimator.score_inputs(inputs, plan) for inputs in batches]

        def explain():
            """generate_answers' loop, also counting the tokens generated (until EOS)."""
            answers, counts = [], []
            model, tokenizer = estimator.model, detector.processor.tokenizer
            for start in range(0, len(explain_images), args.batch_size):
                chunk = explain_images[start : start + args.batch_size]
                inputs = estimator.encode(chunk, [prompt] * len(chunk)).to(model.device)
                inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
                with torch.inference_mode():
                    output = model.generate(
                        **inputs,
                        max_new_tokens=args.max_new_tokens,
                        do_sample=False,
                        pad_token_id=tokenizer.pad_token_id,
                    )
                new = output[:, inputs["input_ids"].shape[1] :]
                answers += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
                for row in new.tolist():
                    ends = [i for i, t in enumerate(row) if t in (tokenizer.eos_token_id, tokenizer.pad_token_id)]
                    counts.append(ends[0] + 1 if ends else len(row))
            return answers, counts

        # warm-up: one batch each way
        estimator.score_inputs(batches[0], plan)
        generate_answers(estimator, explain_images[: args.batch_size], [prompt] * args.batch_size, 8)
        detect(-1)  # warm-up of (a) too: first-call imports, the first fork of workers
        runs: dict[str, list[float]] = {"detect": [], "forward": [], "explain": []}
        waits = []
        for run in range(args.repeats):  # alternated: the machine's load drifts within a run
            summary, seconds = timed(lambda run=run: detect(run))
            runs["detect"].append(seconds)
            waits.append(summary.waited / summary.seconds)
            scores, seconds = timed(forward)
            runs["forward"].append(seconds)
            (answers, counts), seconds = timed(explain)
            runs["explain"].append(seconds)
        batch_ms = stage_ms(detector, paths, args.batch_size)

    median = {k: statistics.median(v) for k, v in runs.items()}
    rate = {
        "detect": len(paths) / median["detect"],
        "forward": len(paths) / median["forward"],
        "explain": len(explain_images) / median["explain"],
    }
    ours = ["fake" if pos - neg >= 0 else "real" for batch in scores for pos, neg in zip(*batch, strict=True)]
    parsed = [parse_label(a) for a in answers]
    pairs = [(o, p) for o, p in zip(ours, parsed, strict=False) if p is not None]
    logger.info("example answers: %s", [a[:60] for a in answers[:3]])
    result = {
        "model": args.model or f"tiny LLaVA, {args.train_epochs} epochs on the sample's real-or-fake pairs",
        "device": str(detector.model.device),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "images": len(paths),
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "preprocessing": mode,
        "repeats": args.repeats,
        "detect_images_per_s": round(rate["detect"], 1),
        "forward_images_per_s": round(rate["forward"], 1),
        "explain_images_per_s": round(rate["explain"], 1),
        "ratio_to_forward": round(rate["detect"] / rate["forward"], 3),
        "speedup_vs_explain": round(rate["detect"] / rate["explain"], 2),
        "explain_images": len(explain_images),
        "max_new_tokens": args.max_new_tokens,
        "mean_new_tokens": round(statistics.mean(counts), 1),
        "parsed": len(pairs),
        "agreement": round(sum(o == p for o, p in pairs) / len(pairs), 4) if pairs else None,
        "loader_wait_share": round(statistics.median(waits), 3),
        "batch_ms": batch_ms,
        "seconds": {k: [round(s, 3) for s in v] for k, v in runs.items()},
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
