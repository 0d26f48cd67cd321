#!/usr/bin/env python
"""Evaluate a checkpoint on a FakeInstruct split: closed-ended accuracy/F1 and token-probability AUC/ECE,
open-ended ROUGE-L and CSS, the detector's raw and calibrated scores, per task, generator and label.

    python scripts/evaluate.py --config recipes/tiny-llava/evaluate/config_demo.yaml
    python scripts/evaluate.py --model outputs/demo/sft --data outputs/demo/fakeinstruct --output_dir outputs/eval

Writes metrics.json, results.md, roc.png and reliability_diagram.png to output_dir. Predictions are cached in
output_dir/predictions.jsonl: a killed run resumes where it stopped.

    python scripts/evaluate.py --benchmark fakeclue --model outputs/sft --data /data/FakeClue --output_dir outputs/fc

scores a benchmark's own test set (fakeclue or loki, the folder as downloaded) as its paper does, with the
token-probability AUC and intervals added (modeling/evaluation/benchmarks.py).
"""

from __future__ import annotations

import sys

from fakeinstruct.logs import setup_logging
from modeling.evaluation.run import EvaluateArguments, evaluate
from modeling.recipes import recipe_parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg == "--benchmark" or arg.startswith("--benchmark=") for arg in argv):
        # a benchmark's own test set, scored as its paper does (modeling/evaluation/benchmarks.py)
        from modeling.evaluation.benchmarks import main as benchmark_main

        setup_logging()
        try:
            benchmark_main(argv)
        except (OSError, ValueError) as err:
            sys.exit(f"evaluate: {err}")
        return
    parser = recipe_parser((EvaluateArguments,), __doc__)
    (args,) = parser.parse_args_and_config(argv)
    setup_logging()
    try:
        evaluate(args)
    except (OSError, ValueError) as err:
        sys.exit(f"evaluate: {err}")


if __name__ == "__main__":
    main()
