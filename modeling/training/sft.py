"""Supervised fine-tuning of a LLaVA-style model on FakeInstruct with TRL's ``SFTTrainer``.

``scripts/sft.py`` parses three dataclasses from a YAML recipe plus command-line overrides: :class:`ScriptArguments`
(the data and the tiny-model switch, below), TRL's ``SFTConfig`` (everything the trainer does) and TRL's
``ModelConfig`` (which checkpoint, dtype, attention and LoRA). :func:`run_sft` does the rest:

1. resolves the model: a Hub id or a folder, or ``tiny`` for the offline tiny LLaVA of :mod:`modeling.tiny.llava`
   (or, with ``tiny_model_arch: idefics3``, the tiny Idefics3 of :mod:`modeling.tiny.idefics3`), built once into
   ``tiny_model_dir`` (the CPU recipe, the demo and the tests use it);
2. loads it with ``AutoModelForImageTextToText`` and ``AutoProcessor`` (no remote code);
3. loads the data (:mod:`modeling.training.data`): a FakeInstruct folder or any ``datasets`` source;
4. wraps the language model in LoRA when ``use_peft`` is set (the projector is trained in full through
   ``lora_modules_to_save`` and saved with the adapter);
5. trains with assistant-only loss when the recipe asks for it (the FakeInstruct recipes do: prompt and image
   tokens are labelled -100), resuming from a checkpoint when asked (:func:`resumable_trainer_class` works
   around transformers restoring no weights for LLaVA; ``last``/``auto`` take the newest *complete* checkpoint),
   and evaluates at the end with ``do_eval``; SIGTERM or SIGINT stops it after the current optimizer step with a
   complete checkpoint (:mod:`modeling.training.preemption`);
6. saves the model (or the adapter) and the processor, chat template included, as safetensors, plus the
   resolved recipe as ``sft_config.json``; metrics go to ``train_results.json`` (with the world size).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers.utils import logging

from modeling.training.resume import resolve_checkpoint, resumable_trainer_class

logger = logging.get_logger(__name__)

TINY_MODEL = "tiny"
# tiny_model_arch (the model_type it writes) -> its builder: module, function
TINY_BUILDERS = {
    "llava": ("modeling.tiny.llava", "build_tiny_llava"),
    "idefics3": ("modeling.tiny.idefics3", "build_tiny_idefics3"),
}
CONFIG_NAME = "sft_config.json"
# Pickles that transformers' Trainer writes next to the final weights; the final folder keeps safetensors only.
PICKLED_ARTIFACTS = ("training_args.bin",)


@dataclass
class ScriptArguments:
    """Arguments of ``scripts/sft.py`` besides TRL's ``SFTConfig`` and ``ModelConfig``.

    Parameters:
        dataset_name (`str`):
            A folder written by ``fakeinstruct generate`` (its relative image paths are resolved by
            ``fakeinstruct.loading.load_fakeinstruct``), or anything ``datasets.load_dataset`` reads: a Hub
            dataset id (e.g. a FakeInstruct dataset pushed with ``--images embed``) or a local dataset folder.
        dataset_config (`str`, *optional*):
            The dataset configuration name passed to ``datasets.load_dataset``.
        dataset_train_split (`str`, *optional*, defaults to `"train"`):
            The split to train on.
        dataset_test_split (`str`, *optional*, defaults to `"validation"`):
            The split to evaluate on: during training when ``eval_strategy`` is not ``"no"``, after it when
            ``do_eval`` is set. FakeInstruct calls its held-out splits ``validation`` and ``test``; keep ``test``
            for the final evaluation of the calibrated detector.
        dataset_tasks (`list[str]`, *optional*):
            Train (and evaluate) on these FakeInstruct task families only (``detection``, ``explanation``,
            ``attribute``, ``enhancement``, ``multi_turn``); all when unset. Needs a ``task`` column.
        max_train_samples (`int`, *optional*):
            Train on at most this many rows, drawn with ``seed`` (for smoke tests and demos).
        max_eval_samples (`int`, *optional*):
            Evaluate on at most this many rows, drawn with ``seed``.
        freeze_vision_tower (`bool`, *optional*, defaults to `False`):
            Keep the vision tower's weights fixed in full fine-tuning (LLaVA-1.5's own recipe does). LoRA
            freezes everything that is neither adapted nor in ``lora_modules_to_save`` anyway.
        tiny_model_dir (`str`, *optional*, defaults to `"outputs/tiny-llava"`):
            Where ``model_name_or_path: tiny`` builds the offline tiny LLaVA (``modeling.tiny.llava.build_tiny_llava``
            with its defaults). A folder that already holds a checkpoint is reused as it is.
        tiny_model_arch (`str`, *optional*, defaults to `"llava"`):
            What ``model_name_or_path: tiny`` builds: ``llava`` or ``idefics3``
            (``modeling.tiny.idefics3.build_tiny_idefics3``). A reused folder must hold that architecture.
    """

    dataset_name: str = field(
        metadata={"help": "FakeInstruct folder (fakeinstruct generate output), Hub dataset id or dataset folder."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset configuration name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(
        default="validation",
        metadata={"help": "Split to evaluate on (read when eval_strategy is not 'no' or do_eval)."},
    )
    dataset_tasks: list[str] | None = field(
        default=None, metadata={"help": "FakeInstruct task families to keep (all when unset)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Train on at most this many rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on at most this many rows."})
    freeze_vision_tower: bool = field(
        default=False, metadata={"help": "Keep the vision tower fixed (full fine-tuning; LoRA freezes it anyway)."}
    )
    tiny_model_dir: str = field(
        default="outputs/tiny-llava",
        metadata={"help": f"Where model_name_or_path={TINY_MODEL!r} builds (or finds) the offline tiny LLaVA."},
    )
    tiny_model_arch: str = field(
        default="llava",
        metadata={"help": f"What model_name_or_path={TINY_MODEL!r} builds: {', '.join(TINY_BUILDERS)}."},
    )


def resolve_model_path(model_name_or_path: str | None, tiny_model_dir: str, training_args, arch: str = "llava") -> str:
    """The checkpoint to load: ``model_name_or_path`` as it is, or the tiny ``arch`` model built into
    ``tiny_model_dir``.

    The main process builds it while the others wait; a folder that already holds a checkpoint is reused.
    """
    if not model_name_or_path:
        raise ValueError("model_name_or_path is required (a Hub id, a folder, or 'tiny')")
    if model_name_or_path != TINY_MODEL:
        return model_name_or_path
    if arch not in TINY_BUILDERS:
        raise ValueError(f"unknown tiny_model_arch {arch!r}; one of {', '.join(TINY_BUILDERS)}")
    module, builder = TINY_BUILDERS[arch]
    path = Path(tiny_model_dir)
    with training_args.main_process_first(local=False, desc="build the tiny model"):
        if not (path / "config.json").is_file():
            import importlib

            logger.info("building the tiny %s in %s", arch, path)
            getattr(importlib.import_module(module), builder)(path)
    found = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    if found != arch:  # a reused folder would silently train another architecture than the one asked for
        raise ValueError(f"{path} holds a tiny {found!r} model, not {arch!r}: set tiny_model_dir to another folder")
    return str(path)


def torch_dtype(name: str | None):
    import torch

    return name if name in (None, "auto") else getattr(torch, name)


def load_model(path: str, model_args, training_args):
    """``AutoModelForImageTextToText.from_pretrained`` with the recipe's dtype, attention and quantization."""
    from transformers import AutoModelForImageTextToText
    from trl import get_quantization_config

    if training_args.trust_remote_code:
        raise ValueError("trust_remote_code is not supported: this script loads only model classes transformers ships")
    quantization_config = get_quantization_config(model_args)
    kwargs = {
        "revision": model_args.model_revision,
        "dtype": torch_dtype(model_args.dtype),
        "attn_implementation": model_args.attn_implementation,
        "trust_remote_code": False,
        "use_safetensors": True,  # pickle weights run code when loaded: never from a base we did not write
    }
    if Path(path).is_dir():
        from modeling.safe_loading import require_safetensors

        require_safetensors(Path(path))  # a clear message rather than transformers' "no file named ..."
    if quantization_config is not None:
        # k-bit weights are placed at load time, each process on its own accelerator
        kwargs.update(quantization_config=quantization_config, device_map={"": training_args.local_process_index})
    kwargs.update(training_args.model_init_kwargs or {})
    if kwargs["trust_remote_code"]:
        raise ValueError("model_init_kwargs: trust_remote_code is not supported")
    if not kwargs["use_safetensors"]:
        raise ValueError("model_init_kwargs: use_safetensors=False is not supported (pickle weights)")
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    logger.info(
        "loaded %s from %s: %.1fM parameters, dtype %s, attention %s",
        type(model).__name__,
        path,
        model.num_parameters() / 1e6,
        model.dtype,
        model.config._attn_implementation,
    )
    return model


def load_processor(path: str, model_args):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(path, revision=model_args.model_revision, trust_remote_code=False)


def freeze_vision_tower(model) -> int:
    """Set ``requires_grad=False`` on the vision tower; return how many parameters that froze.

    LLaVA calls it ``vision_tower``, Idefics3 ``vision_model``; both sit on the inner model when there is one.
    """
    inner = getattr(model, "model", model)
    tower = next((getattr(inner, name) for name in ("vision_tower", "vision_model") if hasattr(inner, name)), None)
    if tower is None:
        raise ValueError(f"freeze_vision_tower: {type(model).__name__} has no vision_tower or vision_model")
    count = 0
    for parameter in tower.parameters():
        parameter.requires_grad_(False)
        count += parameter.numel()
    logger.info("vision tower frozen: %.1fM parameters", count / 1e6)
    return count


def peft_config(model_args):
    """TRL's LoRA config from ``ModelConfig``; the target modules must be named (no silent default)."""
    from trl import get_peft_config

    if model_args.use_peft and not (model_args.lora_target_modules or model_args.lora_target_parameters):
        raise ValueError(
            "use_peft needs lora_target_modules, e.g. a regex on the language model: "
            r"'.*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)'"
        )
    return get_peft_config(model_args)


def build_trainer(script_args, training_args, model_args):
    """Everything up to training: the model, the processor, the data and the ``SFTTrainer``."""
    from modeling.training.data import load_sft_datasets

    path = resolve_model_path(
        model_args.model_name_or_path, script_args.tiny_model_dir, training_args, script_args.tiny_model_arch
    )
    processor = load_processor(path, model_args)
    model = load_model(path, model_args, training_args)
    if script_args.freeze_vision_tower:
        freeze_vision_tower(model)
    evaluate = training_args.eval_strategy != "no" or training_args.do_eval
    with training_args.main_process_first(local=False, desc="load the dataset"):
        train, test = load_sft_datasets(
            script_args.dataset_name,
            config=script_args.dataset_config,
            train_split=script_args.dataset_train_split,
            test_split=script_args.dataset_test_split if evaluate else None,
            tasks=script_args.dataset_tasks,
            max_train_samples=script_args.max_train_samples,
            max_eval_samples=script_args.max_eval_samples,
            seed=training_args.seed,
        )
    trainer = resumable_trainer_class()(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=test,
        processing_class=processor,
        peft_config=peft_config(model_args),
    )
    if model_args.use_peft:
        trainable, total = trainer.model.get_nb_trainable_parameters()
        logger.info("LoRA: %d of %d parameters trainable (%.2f%%)", trainable, total, 100 * trainable / total)
    return trainer


def save(trainer, script_args, training_args, model_args) -> None:
    """The final model (or adapter) and processor in ``output_dir``; safetensors only, the recipe as JSON."""
    output_dir = training_args.output_dir
    model = trainer.accelerator.unwrap_model(trainer.model)
    # generation after training wants the KV cache back on (activation checkpointing turns it off)
    (model.get_base_model() if model_args.use_peft else model).config.get_text_config().use_cache = True
    trainer.save_model(output_dir)  # every process: DeepSpeed ZeRO-3 and FSDP gather the weights collectively
    if not trainer.is_world_process_zero():
        return
    for name in PICKLED_ARTIFACTS:
        Path(output_dir, name).unlink(missing_ok=True)
    recipe = {
        "script_args": asdict(script_args),
        "model_args": asdict(model_args),
        "training_args": json.loads(training_args.to_json_string()),
    }
    Path(output_dir, CONFIG_NAME).write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    logger.info("saved %s to %s", "the LoRA adapter" if model_args.use_peft else "the model", output_dir)


def run_sft(script_args, training_args, model_args):
    """Train and save; return the trainer (its model is the trained one).

    On SIGTERM or SIGINT during training, stop after the current optimizer step with a complete checkpoint and raise
    :class:`modeling.training.preemption.TrainingPreempted` (no final evaluation or save).
    """
    from modeling.training.preemption import PreemptionCallback, TrainingPreempted

    trainer = build_trainer(script_args, training_args, model_args)
    preemption = PreemptionCallback()
    trainer.add_callback(preemption)
    checkpoint = resolve_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    accelerator = trainer.accelerator
    zero = f", ZeRO stage {accelerator.state.deepspeed_plugin.zero_stage}" if trainer.is_deepspeed_enabled else ""
    logger.info(
        "training on %d process(es): %s%s", accelerator.num_processes, accelerator.distributed_type.value, zero
    )
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except BaseException:
        preemption.signals.restore()  # on_train_end does it, but is not reached when training raises
        raise
    if preemption.stopped_at is not None:
        folder = Path(training_args.output_dir, f"checkpoint-{preemption.stopped_at}")
        raise TrainingPreempted(
            preemption.signal_name, preemption.stopped_at, str(folder), trainer, signals=preemption.signals
        )
    if preemption.signals.received is not None:  # after the last step: the final save is the best use of the grace
        logger.warning("a stop signal arrived after the last training step: finishing the final evaluation and save")
    metrics = dict(result.metrics, train_samples=len(trainer.train_dataset), world_size=training_args.world_size)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    if training_args.do_eval:
        metrics = dict(trainer.evaluate(), eval_samples=len(trainer.eval_dataset))
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    save(trainer, script_args, training_args, model_args)
    return trainer
