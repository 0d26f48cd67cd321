"""Resuming a run: which checkpoint to continue from, and loading its weights the way ``from_pretrained`` would.

transformers 5.23 resumes a LLaVA run by loading ``model.safetensors`` with ``load_state_dict(strict=False)``; the
file holds the original key layout, so no key matches and training silently restarts from the initial weights
(transformers#43701). :func:`resumable_trainer_class` loads the weights with the key renaming ``from_pretrained``
applies, and fails loudly when keys are still missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers.utils import logging

logger = logging.get_logger(__name__)

RESUME_LATEST = ("last", "latest", "true")
RESUME_AUTO = "auto"


def resolve_checkpoint(value: str | None, output_dir: str) -> str | None:
    """``resume_from_checkpoint``: a checkpoint folder; ``last`` for the newest complete ``checkpoint-*`` in
    output_dir; ``auto`` for the same, or a fresh start when there is none (one command for a job and its requeues).

    Complete means marked by :mod:`modeling.training.preemption` once every process had written it: newer folders without a
    valid marker (a kill in the middle of a save) are skipped with a warning. A folder named explicitly is used even
    without a marker (checkpoints written before markers existed), but not when its marker contradicts its files.
    """
    from modeling.training.preemption import COMPLETE_MARKER, incomplete_reason, last_complete_checkpoint

    if value is None or value.lower() in ("", "false", "none"):
        return None
    if value.lower() in (*RESUME_LATEST, RESUME_AUTO):
        last = last_complete_checkpoint(output_dir)
        if last is None and value.lower() != RESUME_AUTO:
            raise ValueError(f"resume_from_checkpoint={value!r} but {output_dir} holds no checkpoint-* folder")
        if last is None:
            logger.info("resume_from_checkpoint=auto: no checkpoint in %s, starting from scratch", output_dir)
        return last
    if not os.path.isdir(value):
        raise ValueError(f"resume_from_checkpoint: {value} is not a folder")
    reason = incomplete_reason(value)
    if reason is not None and Path(value, COMPLETE_MARKER).exists():
        raise ValueError(f"resume_from_checkpoint: {value} is incomplete ({reason})")
    if reason is not None:
        logger.warning("resume_from_checkpoint: %s has no %s; it may be incomplete", value, COMPLETE_MARKER)
    return value


def checkpoint_weight_files(folder: str) -> list[str]:
    """The safetensors files of a checkpoint folder (one file, or the shards an index names)."""
    index = Path(folder, "model.safetensors.index.json")
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return [str(Path(folder, shard)) for shard in shards]
    single = Path(folder, "model.safetensors")
    return [str(single)] if single.is_file() else []


def load_checkpoint_weights(model, files: list[str]) -> None:
    """Load safetensors written by ``save_pretrained`` into ``model``, renaming keys as ``from_pretrained`` does.

    ``save_pretrained`` writes LLaVA's original key layout (``language_model.model.*``, ``vision_tower.*``), not
    the module names (``model.language_model.*``). Every key must land; only tied weights may be absent.
    """
    from safetensors.torch import load_file
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    transforms = get_model_conversion_mapping(model)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    if converters:
        raise ValueError(
            f"cannot resume {type(model).__name__} here: it converts weights on load; resume it with DeepSpeed"
        )
    own = model.state_dict()
    state = {}
    for file in files:
        for key, tensor in load_file(file, device="cpu").items():
            state[rename_source_key(key, renamings, converters, model.base_model_prefix, own)[0]] = tensor
    result = model.load_state_dict(state, strict=False)
    loaded = {own[k].data_ptr() for k in state if k in own}
    missing = [k for k in result.missing_keys if own[k].data_ptr() not in loaded]  # tied weights were loaded
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"checkpoint does not match the model: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )


def resumable_trainer_class():
    """``SFTTrainer`` whose resume restores the weights of LLaVA-style models.

    transformers' ``Trainer._load_from_checkpoint`` (5.23) loads ``model.safetensors`` with a plain
    ``load_state_dict(strict=False)``; the file holds the original key layout, so no key matches and training
    silently goes on from the initial weights with the checkpoint's optimizer state (huggingface/transformers#43701).
    DeepSpeed (its own checkpoint format), FSDP and PEFT adapters keep transformers' own loading. Checkpoints are
    marked complete once written (:class:`modeling.training.preemption.CompleteCheckpointsMixin`).
    """
    from accelerate.utils import is_peft_model
    from trl import SFTTrainer

    from modeling.training.preemption import CompleteCheckpointsMixin

    class ResumableSFTTrainer(CompleteCheckpointsMixin, SFTTrainer):
        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            target = self.model if model is None else model
            files = checkpoint_weight_files(resume_from_checkpoint)
            if not files or self.is_fsdp_enabled or is_peft_model(target):
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            logger.info("loading the weights of %s", resume_from_checkpoint)
            load_checkpoint_weights(target, files)

    return ResumableSFTTrainer
