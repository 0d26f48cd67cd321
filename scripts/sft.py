#!/usr/bin/env python
"""Supervised fine-tuning of a LLaVA-style model on FakeInstruct (TRL SFTTrainer, assistant-only loss).

A recipe is a YAML file of ScriptArguments (modeling.training.sft), TRL SFTConfig and TRL ModelConfig fields; any field can
be overridden on the command line. Run from the repository root (recipes hold paths relative to it):

    # one process (CPU or one GPU)
    python scripts/sft.py --config recipes/tiny-llava/sft/config_demo.yaml
    # several GPUs / nodes: pick an accelerate config (ddp, zero2, zero3, fsdp)
    accelerate launch --config_file recipes/accelerate_configs/zero3.yaml scripts/sft.py \\
        --config recipes/llava-1.5-7b/sft/config_full.yaml
    # LoRA on the language model, projector trained and saved with the adapter
    accelerate launch --config_file recipes/accelerate_configs/ddp.yaml scripts/sft.py \\
        --config recipes/llava-1.5-7b/sft/config_lora.yaml
    # go on from the newest complete checkpoint-* in output_dir (or name one); auto: or start fresh if there is none
    ... --resume_from_checkpoint last

On SIGTERM or SIGINT (SLURM preemption, spot-instance notice, Ctrl-C) the run finishes its current optimizer step, on
every process, writes a complete checkpoint-N and exits with status 75 (EX_TEMPFAIL): run the same command with
--resume_from_checkpoint auto to go on (modeling.training.preemption). A checkpoint folder is complete once it holds
checkpoint_complete.json, written last; resuming skips folders without it.

model_name_or_path: tiny builds the offline tiny LLaVA into tiny_model_dir (nothing is downloaded).
The output folder holds the model (or LoRA adapter) and the processor with its chat template, as safetensors,
sft_config.json (the resolved recipe), train_results.json and trainer_state.json (the loss history).
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import datasets
import transformers
from trl import ModelConfig, SFTConfig, TrlParser

from modeling.training.preemption import PREEMPTED_EXIT_CODE, TrainingPreempted
from modeling.training.sft import ScriptArguments, run_sft

logger = transformers.utils.logging.get_logger("scripts.sft")


def make_parser() -> TrlParser:
    return TrlParser((ScriptArguments, SFTConfig, ModelConfig), description=__doc__.splitlines()[0])


def setup_logging(training_args: SFTConfig) -> None:
    """transformers' and datasets' loggers at the recipe's level (``log_level``; replicas: ``log_level_replica``)."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    logging.getLogger("modeling").setLevel(level)
    logger.setLevel(level)


def check_world_size(training_args: SFTConfig) -> None:
    """Refuse to train when the launcher started more processes than the Trainer will use.

    Each process would then train alone and all would write the same output_dir. It happens with an FSDP (or
    multi-GPU) accelerate config on a machine without GPUs: accelerate selects FSDP only for GPU-class devices.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != training_args.world_size:
        sys.exit(
            f"sft: launched as {launched} processes but the Trainer sees a world of {training_args.world_size}: "
            "on a machine without GPUs set use_cpu: true (DDP over gloo, or a DeepSpeed config); FSDP needs GPUs"
        )


def main(argv: list[str] | None = None) -> None:
    script_args, training_args, model_args = make_parser().parse_args_and_config(argv)
    setup_logging(training_args)
    logger.info("script arguments: %s", script_args)
    logger.info("model arguments: %s", model_args)
    logger.info(
        "process %d of %d, device %s, distributed: %s",
        training_args.process_index,
        training_args.world_size,
        training_args.device,
        training_args.parallel_mode.value,
    )
    check_world_size(training_args)
    try:
        trainer = run_sft(script_args, training_args, model_args)
    except TrainingPreempted as stop:
        # the checkpoint is written; the launcher sends SIGTERM to the processes still running once one has exited,
        # and Python puts the default action back while it shuts down: that must not turn status 75 into a death
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        logger.warning("%s (exit status %d)", stop, PREEMPTED_EXIT_CODE)
        stop.trainer.end()
        sys.exit(PREEMPTED_EXIT_CODE)
    logger.info("done: %s", training_args.output_dir)
    trainer.end()


if __name__ == "__main__":
    main()
