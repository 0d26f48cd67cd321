#!/usr/bin/env python
"""Benchmark the training overhead of `scripts/sft.py` against a minimal plain-TRL script, same config, same run.

Both sides train the offline tiny LLaVA (``modeling.tiny.llava.build_tiny_llava``) on the FakeInstruct train split of
the bundled sample, both built once into a work folder first, for ``--steps`` optimizer steps:

- ``ours``: ``scripts/sft.py --config recipes/tiny-llava/sft/config_demo.yaml`` overridden to ``--max_steps N``,
  ``--save_strategy no``, ``--eval_strategy no``, ``--do_eval false`` (batch size and everything else from the
  recipe);
- ``plain_trl``: a script this benchmark writes to the work folder: ``AutoModelForImageTextToText`` and
  ``AutoProcessor`` from the same folder, ``fakeinstruct.loading.load_fakeinstruct`` for the same split, the same
  column selection as ``modeling.training.data`` (TRL's columns only), and ``SFTTrainer(model, args=SFTConfig(...),
  train_dataset=..., processing_class=processor).train()``. The ``SFTConfig`` takes the recipe's own values
  (read from the YAML, not copied by hand): ``use_cpu``, ``bf16``, ``max_length``, ``assistant_only_loss``,
  ``activation_checkpointing``, batch size, gradient accumulation, learning rate, scheduler, warm-up, weight decay,
  ``logging_steps``, ``report_to``, ``seed``, ``dataloader_num_workers``; the model loads with the recipe's dtype
  and attention implementation.

What is measured, and how: each run is its own subprocess, started through the same small shim (written to the
work folder) that appends one ``TrainerCallback`` to transformers' default callbacks and then runs the script with
``runpy`` as ``python SCRIPT ...`` would. The callback records ``time.perf_counter()`` at every ``on_step_end``.
The step time is ``(t[N] - t[W]) / (N - W)`` with ``W = --warmup-steps`` (default 5): the mean wall time of steps
W+1..N as the trainer loop sees it (data loading and collation, forward, backward, optimizer and scheduler step,
logging every ``logging_steps``). Process start-up, imports, model and dataset load, trainer construction, the
first W steps (allocator and kernel warm-up) and everything after training (our script's metrics and model save)
are excluded, on both sides alike, and neither script's code is changed. Runs alternate (ours, plain, ours,
plain, ...) so that slow drifts of a shared machine hit both; each side's step time is the median over
``--repetitions``. ``--threads`` pins both sides' intra-op threads alike. Each subprocess's whole wall time is reported too, for information (ours also saves the model).

The callback also records ``time.process_time()`` (CPU seconds of the whole process, all threads) at the same
points. On a shared machine other tenants' load inflates wall time by a factor that changes from run to run;
process CPU time is far less sensitive to it (though spinning OpenMP threads and cache contention still leak in,
least with ``--threads 1``). So besides the median-based ``overhead_ratio`` (wall), the result gives
``min_overhead_ratio`` (fastest run of each side, the usual estimator when noise only slows things down) and
``cpu_overhead_ratio`` (median CPU seconds per step).

The last line printed is a JSON object: steps, ours_step_s, plain_trl_step_s, overhead_ratio (ours / plain),
repetitions, then warmup_steps, batch_size, min_overhead_ratio, cpu_overhead_ratio, the per-repetition wall and
CPU step times, each subprocess's wall time and the thread setting.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from fakeinstruct.arguments import HelpFormatter, both_spellings

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "tiny-llava" / "sft" / "config_demo.yaml"
SAMPLE = ROOT / "fakeinstruct" / "data" / "sample" / "chains.jsonl"
logger = logging.getLogger("scripts.benchmark_train")

# The recipe fields the plain-TRL script passes to SFTConfig as they are (everything that changes the step).
SFT_FIELDS = (
    "use_cpu",
    "bf16",
    "assistant_only_loss",
    "max_length",
    "activation_checkpointing",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "logging_steps",
    "report_to",
    "seed",
    "dataloader_num_workers",
)

SHIM = '''\
"""Run SCRIPT as `python SCRIPT ARGS` would, with a callback timing every optimizer step into OUT (JSON)."""
import json, os, runpy, sys, time

out, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
import transformers.trainer
from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.times["begin"] = [time.perf_counter(), time.process_time()]

    def on_step_end(self, args, state, control, **kwargs):
        self.times[state.global_step] = [time.perf_counter(), time.process_time()]

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            with open(out, "w") as handle:
                json.dump({"begin": self.times.pop("begin"), "steps": self.times}, handle)


transformers.trainer.DEFAULT_CALLBACKS.append(StepTimer)
sys.argv = [script, *args]
sys.path[0] = os.path.dirname(os.path.abspath(script))
runpy.run_path(script, run_name="__main__")
'''

PLAIN_TRL = '''\
"""Plain TRL SFT of a vision-language model on a FakeInstruct folder: the benchmark's baseline."""
import json, sys

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import SFTConfig, SFTTrainer

from fakeinstruct.loading import load_fakeinstruct

spec = json.loads(open(sys.argv[1]).read())
dtype = spec["dtype"] if spec["dtype"] in (None, "auto") else getattr(torch, spec["dtype"])
model = AutoModelForImageTextToText.from_pretrained(
    spec["model"], dtype=dtype, attn_implementation=spec["attn_implementation"]
)
processor = AutoProcessor.from_pretrained(spec["model"])
train = load_fakeinstruct(spec["data"])["train"]
train = train.select_columns([c for c in train.column_names if c in ("messages", "prompt", "completion", "images")])
args = SFTConfig(output_dir=spec["output_dir"], max_steps=spec["max_steps"], save_strategy="no", **spec["sft"])
trainer = SFTTrainer(model, args=args, train_dataset=train, processing_class=processor)
trainer.train()
'''


def build_fixtures(work: Path) -> tuple[Path, Path]:
    """The tiny LLaVA and the sample's FakeInstruct folder, each built once under ``work``."""
    model, data = work / "tiny-llava", work / "fakeinstruct-sample"  # not "fakeinstruct": no package shadowing
    if not (model / "config.json").is_file():
        from modeling.tiny.llava import build_tiny_llava

        logger.info("building the tiny LLaVA in %s", model)
        build_tiny_llava(model)
    if not (data / "fakeinstruct_config.json").is_file():
        logger.info("generating FakeInstruct from %s into %s", SAMPLE, data)
        cli = Path(sys.executable).with_name("fakeinstruct")
        subprocess.run([str(cli), "generate", str(SAMPLE), "--out", str(data), "--no-progress"], check=True)
    return model, data


def step_time(timing_file: Path, steps: int, warmup: int) -> tuple[float, float]:
    """Mean wall and process-CPU seconds per step over steps warmup+1..steps, from the shim's timestamps."""
    times = {int(k): v for k, v in json.loads(timing_file.read_text())["steps"].items()}
    if steps not in times or warmup not in times:
        raise RuntimeError(f"{timing_file}: steps {sorted(times)} lack {warmup} or {steps}")
    wall = (times[steps][0] - times[warmup][0]) / (steps - warmup)
    cpu = (times[steps][1] - times[warmup][1]) / (steps - warmup)
    return wall, cpu


def run_timed(name: str, command: list[str], log: Path, env: dict[str, str]) -> float:
    """Run ``command`` from the repository root, its output into ``log``; return its wall seconds."""
    logger.info("%s: %s", name, " ".join(command))
    start = time.perf_counter()
    with log.open("w") as handle:
        result = subprocess.run(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - start
    if result.returncode:
        raise RuntimeError(f"{name} failed with exit status {result.returncode}; see {log}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run (max_steps)")
    parser.add_argument(
        *both_spellings("--warmup_steps"), type=int, default=5, help="first steps left out of the step time"
    )
    parser.add_argument(
        "--repetitions",
        type=int,
        default=3,
        help="runs of each side, alternated (at least 2; 3+ outvotes one noisy run)",
    )
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="the tiny recipe both sides train with")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for both sides (default: torch's own choice)")
    parser.add_argument(
        *both_spellings("--work_dir"), type=Path, help="where fixtures, scripts and logs go (default: a temp folder)"
    )
    args = parser.parse_args()
    if args.repetitions < 2:
        parser.error("--repetitions must be at least 2")
    if not 1 <= args.warmup_steps < args.steps:
        parser.error("--warmup-steps must be at least 1 and below --steps")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    with tempfile.TemporaryDirectory(prefix="benchmark_train.") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        logger.info("work folder: %s", work)
        model, data = build_fixtures(work)
        recipe = yaml.safe_load(args.recipe.read_text())
        shim, plain = work / "timing_shim.py", work / "plain_trl_sft.py"
        shim.write_text(SHIM)
        plain.write_text(PLAIN_TRL)

        def ours_command(out: Path, k: int) -> list[str]:
            return [
                *("scripts/sft.py", "--config", str(args.recipe)),
                *("--model_name_or_path", str(model), "--dataset_name", str(data)),
                *("--max_steps", str(args.steps), "--save_strategy", "no"),
                *("--eval_strategy", "no", "--do_eval", "false", "--output_dir", str(out)),
            ]

        def plain_command(out: Path, k: int) -> list[str]:
            spec = {
                "model": str(model),
                "data": str(data),
                "output_dir": str(out),
                "max_steps": args.steps,
                "dtype": recipe.get("dtype"),
                "attn_implementation": recipe.get("attn_implementation"),
                "sft": {name: recipe[name] for name in SFT_FIELDS if name in recipe},
            }
            spec_file = work / f"plain_trl.{k}.json"
            spec_file.write_text(json.dumps(spec, indent=2))
            return [str(plain), str(spec_file)]

        commands = {"ours": ours_command, "plain_trl": plain_command}
        logger.info("plain-TRL SFTConfig from %s: %s", args.recipe, {n: recipe.get(n) for n in SFT_FIELDS})

        env = dict(os.environ)
        if args.threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
        step_s = {name: [] for name in commands}
        cpu_s = {name: [] for name in commands}
        wall_s = {name: [] for name in commands}
        for k in range(args.repetitions):
            for name, command in commands.items():
                out = work / f"{name}.{k}"
                timing = work / f"{name}.{k}.timing.json"
                full = [sys.executable, str(shim), str(timing), *command(out, k)]
                wall_s[name].append(round(run_timed(f"{name} #{k + 1}", full, work / f"{name}.{k}.log", env), 2))
                wall, cpu = step_time(timing, args.steps, args.warmup_steps)
                step_s[name].append(wall)
                cpu_s[name].append(cpu)
                logger.info(
                    "%s #%d: %.4f s/step, %.4f CPU s/step (steps %d..%d), %.1f s wall",
                    name,
                    k + 1,
                    wall,
                    cpu,
                    args.warmup_steps + 1,
                    args.steps,
                    wall_s[name][-1],
                )

    ours, plain_s = statistics.median(step_s["ours"]), statistics.median(step_s["plain_trl"])
    ours_cpu, plain_cpu = statistics.median(cpu_s["ours"]), statistics.median(cpu_s["plain_trl"])
    ours_min, plain_min = min(step_s["ours"]), min(step_s["plain_trl"])
    result = {
        "steps": args.steps,
        "ours_step_s": round(ours, 4),
        "plain_trl_step_s": round(plain_s, 4),
        "overhead_ratio": round(ours / plain_s, 3),
        "repetitions": args.repetitions,
        "warmup_steps": args.warmup_steps,
        "batch_size": recipe.get("per_device_train_batch_size"),
        "min_overhead_ratio": round(ours_min / plain_min, 3),
        "cpu_overhead_ratio": round(ours_cpu / plain_cpu, 3),
        "ours_step_s_runs": [round(s, 4) for s in step_s["ours"]],
        "plain_trl_step_s_runs": [round(s, 4) for s in step_s["plain_trl"]],
        "ours_cpu_step_s_runs": [round(s, 4) for s in cpu_s["ours"]],
        "plain_trl_cpu_step_s_runs": [round(s, 4) for s in cpu_s["plain_trl"]],
        "ours_wall_s_runs": wall_s["ours"],
        "plain_trl_wall_s_runs": wall_s["plain_trl"],
        "threads": args.threads or "default",
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
