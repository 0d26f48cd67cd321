#!/usr/bin/env python
"""The whole pipeline on the bundled sample, as `make demo` runs it: validate -> generate -> report -> build the tiny
model -> fine-tune -> calibrate -> evaluate -> export -> detect.

Each stage is the command a user would run; this script only strings them together and says what happens.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fakeinstruct.cli import main as fakeinstruct
from fakeinstruct.logs import setup_logging

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "fakeinstruct" / "data" / "sample"
RECIPE = "recipes/tiny-llava/sft/config_demo.yaml"
CALIBRATE_RECIPE = str(ROOT / "recipes/tiny-llava/calibrate/config_demo.yaml")
EVALUATE_RECIPE = str(ROOT / "recipes/tiny-llava/evaluate/config_demo.yaml")
# The sample's split for the demo: enough authors in the test split (6) for intervals that resample authors.
SPLIT = "0.5,0.15,0.35"
# One real photograph and one GAN output from the sample's test split.
DETECT_IMAGES = ("sample-0027.jpg", "sample-0012.jpg")


@dataclass
class DemoArguments:
    output_dir: str = field(default="outputs/demo", metadata={"help": "where the demo writes everything"})
    workers: int = field(default=2, metadata={"help": "generation worker processes"})
    max_steps: int | None = field(
        default=None, metadata={"help": "cap the fine-tuning steps (default: the recipe's one epoch)"}
    )


logger = logging.getLogger("scripts.demo")


def stage(title: str, argv: list[str]) -> None:
    logger.info("== %s: fakeinstruct %s", title, " ".join(argv))
    code = fakeinstruct(argv)
    if code != 0:
        sys.exit(f"demo: stage '{title}' failed with exit code {code}")


def main() -> None:
    from fakeinstruct.arguments import HelpFormatter, add_dataclass_arguments, dataclass_from_args

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    add_dataclass_arguments(parser, DemoArguments)
    args = dataclass_from_args(DemoArguments, parser.parse_args())
    setup_logging(fmt="%(message)s")
    out = Path(args.output_dir)
    chains = SAMPLE / "chains.jsonl"

    stage(
        "validate the bundled FakeChain sample",
        ["validate", str(chains), "--strict", "--quarantine", str(out / "quarantine.jsonl")],
    )
    stage("check the instruction templates", ["templates", "check"])
    data = out / "fakeinstruct"
    stage(
        "generate FakeInstruct",
        [
            *("generate", str(chains), "--out", str(data), "--workers", str(args.workers), "--overwrite"),
            *("--seed", "0", "--split", SPLIT),
        ],
    )
    stage("measure its quality", ["stats", str(data), "--strict"])
    stats = json.loads((data / "stats.json").read_text())
    logger.info("FakeInstruct: %d pairs in %s", stats["pairs"], data)
    logger.info("  per task family: %s", stats["per_task"])
    logger.info("  per split:       %s", stats["per_split"])
    logger.info("  dataset card:    %s", data / "README.md")
    logger.info("  figure:          %s", data / "stats.png")

    train(out, data, args.max_steps)
    calibrate_and_evaluate(out)
    publish_and_detect(out, data)


def run_script(title: str, script: str, argv: list[str]) -> None:
    """A stage that users run as ``python scripts/<script> ...``, in a process of its own."""
    logger.info("== %s: python scripts/%s %s", title, script, " ".join(argv))
    code = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *argv], check=False).returncode
    if code != 0:
        sys.exit(f"demo: stage '{title}' failed with exit code {code}")


def calibrate_and_evaluate(out: Path) -> None:
    model, data, scores, evaluation = out / "sft", out / "fakeinstruct", out / "scores", out / "eval"
    run_script(
        "calibrate on the validation split",
        "calibrate.py",
        ["--config", CALIBRATE_RECIPE, "--model", str(model), "--data", str(data), "--cache_dir", str(scores)],
    )
    run_script(
        "evaluate on the test split",
        "evaluate.py",
        ["--config", EVALUATE_RECIPE, "--model", str(model), "--data", str(data), "--output_dir", str(evaluation)],
    )


def summarise(out: Path) -> None:
    """The numbers the demo exists to show, whatever they are: the tiny model is not expected to detect, and the
    summary says whether it beats the baselines rather than claiming it does."""
    from modeling.evaluation.report import with_interval

    model = out / "sft"
    report = json.loads((model / "calibration_report.json").read_text())
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    before, after = report["before"], report["after"]
    groups = metrics["groups"]["count"]
    logger.info("== summary (%s split: %d images from %d authors)", metrics["split"], before["n"], groups)
    logger.info("  test AUC [95 %s interval over authors]; accuracy [interval]:", "%")
    entries = [("model", metrics["detector"].get("calibrated") or metrics["detector"]["raw"])]
    entries += [(f"baseline: {name}", m) for name, m in metrics.get("baselines", {}).items()]
    for name, m in entries:
        logger.info("    %-24s AUC %s; accuracy %s", name, with_interval(m, "auc"), with_interval(m, "accuracy"))
    for name, result in metrics.get("versus_baselines", {}).items():
        verdict = "beats" if result["beats"] else "does not beat"
        logger.info("  the model %s the %s baseline", verdict, name)
    logger.info(
        "  ECE %.4f before calibration, %.4f after (%s scaling fitted on %d %s images)",
        before["ece"],
        after["ece"],
        report["method"],
        report["calibration_split"]["n"],
        report["calibration_split"]["name"],
    )
    detection = metrics["by_task"]["detection"]["closed"]
    logger.info(
        "  closed-ended detection questions: accuracy %.3f from generated answers (%d of %d unparsed)",
        detection["accuracy"],
        detection["unparsed"],
        detection["n"],
    )
    logger.info("  reliability diagram:  %s", model / "reliability_diagram.png")
    logger.info("  evaluation tables:    %s", out / "eval" / "results.md")
    logger.info("  publishable folder:   %s (model card: README.md)", out / "publish")


def publish_and_detect(out: Path, data: Path) -> None:
    """Write the publishable folder, then load the detector back from it as a user would."""
    publish = out / "publish"
    run_script(
        "write the publishable folder",
        "push_to_hub.py",
        [
            "--model",
            str(out / "sft"),
            "--eval_dir",
            str(out / "eval"),
            "--dataset_dir",
            str(data),
            "--output_dir",
            str(publish),
        ],
    )
    images = [SAMPLE / "images" / name for name in DETECT_IMAGES]
    argv = ["detect", *map(str, images), "--model", str(publish), "--explain"]
    logger.info("== detect with the published folder: fakescope %s", " ".join(argv))
    from modeling.cli import main as fakescope

    code = fakescope(argv)
    if code != 0:
        sys.exit(f"demo: stage 'detect' failed with exit code {code}")
    summarise(out)


def train(out: Path, data: Path, max_steps: int | None) -> None:
    """The tiny LLaVA recipe on the FakeInstruct just generated, in a process of its own (as users run it)."""
    model = out / "tiny-llava"
    if (model / "config.json").is_file():
        logger.info("== the tiny model: %s holds one already", model)
    else:
        run_script("build the tiny model", "build_tiny_model.py", ["--output-dir", str(model)])
    argv = [sys.executable, str(ROOT / "scripts" / "sft.py"), "--config", str(ROOT / RECIPE)]
    argv += ["--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(out / "sft")]
    if max_steps:
        argv += ["--max_steps", str(max_steps)]
    logger.info("== fine-tune the tiny model: python scripts/sft.py --config %s", RECIPE)
    code = subprocess.run(argv, check=False).returncode
    if code != 0:
        sys.exit(f"demo: stage 'fine-tune' failed with exit code {code}")
    history = json.loads((out / "sft" / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    evaluation = json.loads((out / "sft" / "eval_results.json").read_text())
    logger.info("training loss: %s", " -> ".join(f"{loss:.2f}" for loss in losses))
    logger.info(
        "validation loss %.3f after %d logged steps; model in %s", evaluation["eval_loss"], len(losses), out / "sft"
    )


if __name__ == "__main__":
    main()
