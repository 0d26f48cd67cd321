#!/usr/bin/env python
"""Fine-tune on FakeInstruct: `[accelerate launch ...] scripts/sft.py --config RECIPE.yaml [--field value ...]`.

Exits with status 75 after SIGTERM/SIGINT and a complete checkpoint: rerun with --resume_from_checkpoint auto.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import datasets
import transformers
from trl import ModelConfig, SFTConfig

from modeling.recipes import recipe_parser
from modeling.training.preemption import PREEMPTED_EXIT_CODE, TrainingPreempted
from modeling.training.sft import ScriptArguments, run_sft

logger = logging.getLogger("scripts.sft")


def make_parser():
    return recipe_parser((ScriptArguments, SFTConfig, ModelConfig), __doc__)


def main(argv: list[str] | None = None) -> None:
    script_args, training_args, model_args = make_parser().parse_args_and_config(argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", stream=sys.stdout)
    level = training_args.get_process_log_level()  # replicas log at log_level_replica
    datasets.logging.set_verbosity(level)
    transformers.logging.set_verbosity(level)
    logging.getLogger("modeling").setLevel(level)
    logger.setLevel(level)
    logger.info("script arguments: %s\nmodel arguments: %s", script_args, model_args)
    # accelerate picks FSDP on GPU-class devices only: elsewhere each process would train alone, into one output_dir
    if (launched := int(os.environ.get("WORLD_SIZE", "1"))) != training_args.world_size:
        world = training_args.world_size
        sys.exit(f"sft: launched as {launched} processes but the Trainer sees a world of {world}: set use_cpu: true")
    try:
        trainer = run_sft(script_args, training_args, model_args)
    except TrainingPreempted as stop:
        # the launcher signals the processes still running once one exits, and Python puts the default action back
        # while it shuts down: that must not turn status 75 into a death by signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        logger.warning("%s (exit status %d)", stop, PREEMPTED_EXIT_CODE)
        stop.trainer.end()
        sys.exit(PREEMPTED_EXIT_CODE)
    logger.info("done: %s", training_args.output_dir)
    trainer.end()


if __name__ == "__main__":
    main()
