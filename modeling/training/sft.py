"""``run_sft``: train the model a recipe names on its data with TRL's ``SFTTrainer``; save it with its processor
(chat template included) as safetensors, and the resolved recipe as ``sft_config.json``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import trl
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.utils import logging

from modeling.safe_loading import require_safetensors
from modeling.training.data import load_sft_datasets
from modeling.training.preemption import PreemptionCallback, TrainingPreempted
from modeling.training.resume import ResumableSFTTrainer, resolve_checkpoint

logger = logging.get_logger(__name__)


@dataclass
class ScriptArguments(trl.ScriptArguments):
    """``trl.ScriptArguments`` (``dataset_name``: a ``fakeinstruct generate`` folder or a ``load_dataset`` source) and:

    Args:
        dataset_tasks (`list[str]`, *optional*):
            Train and evaluate on these task families only (``detection``, ``multi_turn`` ...); all when unset.
        max_train_samples (`int`, *optional*):
            Train on at most this many rows, drawn with ``seed``.
        max_eval_samples (`int`, *optional*):
            Evaluate on at most this many rows, drawn with ``seed``.
        freeze_vision_tower (`bool`, *optional*, defaults to `False`):
            Keep the vision tower fixed in full fine-tuning; LoRA freezes what it neither adapts nor saves anyway.
    """

    dataset_tasks: list[str] | None = field(default=None, metadata={"help": "FakeInstruct task families to keep."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Train on at most this many rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on at most this many rows."})
    freeze_vision_tower: bool = field(default=False, metadata={"help": "Keep the vision tower fixed."})

    def __post_init__(self):
        if not self.dataset_name or self.dataset_streaming:
            raise ValueError("dataset_name is required; dataset_streaming is not supported (rows are filtered first)")


def load_model(path: str, model_args, training_args):
    """``AutoModelForImageTextToText`` with the recipe's revision, dtype, attention and quantization."""
    kwargs = {"revision": model_args.model_revision, "dtype": model_args.dtype, "use_safetensors": True}
    kwargs.update(
        attn_implementation=model_args.attn_implementation, trust_remote_code=training_args.trust_remote_code
    )
    if (quantization_config := trl.get_quantization_config(model_args)) is not None:
        # k-bit weights are placed at load time, each process on its own accelerator
        kwargs.update(quantization_config=quantization_config, device_map={"": training_args.local_process_index})
    kwargs.update(training_args.model_init_kwargs or {})
    if kwargs["trust_remote_code"] or not kwargs["use_safetensors"]:  # both run code that comes with the weights
        raise ValueError("trust_remote_code and use_safetensors=False are not supported")
    if Path(path).is_dir():
        require_safetensors(Path(path))  # a clear message rather than transformers' "no file named ..."
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    logger.info("loaded %s from %s: %.1fM parameters", type(model).__name__, path, model.num_parameters() / 1e6)
    return model


def freeze_vision_tower(model) -> int:
    """Freeze the vision tower (LLaVA's ``vision_tower``, Idefics3's ``vision_model``); return its parameter count."""
    inner = getattr(model, "model", model)
    tower = getattr(inner, "vision_tower", None) or getattr(inner, "vision_model", None)
    if tower is None:
        raise ValueError(f"freeze_vision_tower: {type(model).__name__} has no vision_tower or vision_model")
    tower.requires_grad_(False)
    return sum(p.numel() for p in tower.parameters())


def peft_config(model_args):
    """TRL's LoRA config from ``ModelConfig``; the target modules must be named (no silent default)."""
    if model_args.use_peft and not (model_args.lora_target_modules or model_args.lora_target_parameters):
        raise ValueError(r"use_peft needs lora_target_modules, e.g. '.*language_model.*\.(q_proj|v_proj)'")
    return trl.get_peft_config(model_args)


def build_trainer(script_args, training_args, model_args):
    """The model, the processor, the data and the trainer."""
    path, revision = model_args.model_name_or_path, model_args.model_revision
    processor = AutoProcessor.from_pretrained(path, revision=revision, trust_remote_code=False)
    model = load_model(path, model_args, training_args)
    if script_args.freeze_vision_tower:
        freeze_vision_tower(model)
    evaluate = training_args.eval_strategy != "no" or training_args.do_eval
    with training_args.main_process_first(local=False, desc="load the dataset"):
        train, test = load_sft_datasets(script_args, training_args.seed, evaluate)
    data = {"train_dataset": train, "eval_dataset": test, "processing_class": processor}
    trainer = ResumableSFTTrainer(model, training_args, peft_config=peft_config(model_args), **data)
    if model_args.use_peft:
        trainable, total = trainer.model.get_nb_trainable_parameters()
        logger.info("LoRA: %d of %d parameters trainable (%.2f%%)", trainable, total, 100 * trainable / total)
    return trainer


def run_sft(script_args, training_args, model_args):
    """Train, evaluate when ``do_eval``, save; return the trainer. After a stop on SIGTERM/SIGINT, raise
    :class:`~modeling.training.preemption.TrainingPreempted` instead (its checkpoint written, nothing else)."""
    out = training_args.output_dir
    trainer = build_trainer(script_args, training_args, model_args)
    preemption = PreemptionCallback()
    trainer.add_callback(preemption)
    checkpoint = resolve_checkpoint(training_args.resume_from_checkpoint, out)
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    acc = trainer.accelerator
    zero = f", ZeRO stage {acc.state.deepspeed_plugin.zero_stage}" if trainer.is_deepspeed_enabled else ""
    logger.info("training on %d process(es): %s%s", acc.num_processes, acc.distributed_type.value, zero)
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except BaseException:
        preemption.restore()  # on_train_end would, but is not reached when training raises
        raise
    if preemption.stopped_at is not None:
        folder = str(Path(out, f"checkpoint-{preemption.stopped_at}"))
        raise TrainingPreempted(preemption.signal_name, preemption.stopped_at, folder, trainer, preemption)
    if preemption.received is not None:  # after the last step: the final save is the best use of the grace
        logger.warning("a stop signal arrived after the last training step: finishing the final evaluation and save")
    metrics = {
        "train": dict(result.metrics, train_samples=len(trainer.train_dataset), world_size=training_args.world_size)
    }
    trainer.save_state()
    if training_args.do_eval:
        metrics["eval"] = dict(trainer.evaluate(), eval_samples=len(trainer.eval_dataset))
    for split, values in metrics.items():
        trainer.log_metrics(split, values)
        trainer.save_metrics(split, values)
    model = acc.unwrap_model(trainer.model)
    # generation after training wants the KV cache back on (activation checkpointing turns it off)
    (model.get_base_model() if model_args.use_peft else model).config.get_text_config().use_cache = True
    trainer.save_model(out)  # on every process: ZeRO-3 and FSDP gather the weights together
    if trainer.is_world_process_zero():
        Path(out, "training_args.bin").unlink(missing_ok=True)  # the Trainer's pickle: the folder keeps safetensors
        recipe = {"script_args": asdict(script_args), "model_args": asdict(model_args)}
        recipe["training_args"] = json.loads(training_args.to_json_string())
        Path(out, "sft_config.json").write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    return trainer
