#!/usr/bin/env python
"""Fit the calibration head of a fine-tuned checkpoint and report ECE before and after on the test split.

    python scripts/calibrate.py --config recipes/tiny-llava/calibrate/config_demo.yaml
    python scripts/calibrate.py --model outputs/demo/sft --data outputs/demo/fakeinstruct --method temperature

Scores every image of the calibration split (default ``validation``) with the token-probability estimator, fits
temperature or Platt scaling on those scores, saves the head in ``<model>/calibration/`` (with the prompts in
``<model>/detector_config.json``), then writes ``calibration_report.json`` and ``reliability_diagram.png``.
"""

from __future__ import annotations

import sys

from fakeinstruct.logs import setup_logging
from modeling.calibration.fit import CalibrateArguments, calibrate
from modeling.recipes import recipe_parser


def main(argv: list[str] | None = None) -> None:
    parser = recipe_parser((CalibrateArguments,), __doc__)
    (args,) = parser.parse_args_and_config(argv)
    setup_logging()
    try:
        calibrate(args)
    except (OSError, ValueError) as err:
        sys.exit(f"calibrate: {err}")


if __name__ == "__main__":
    main()
