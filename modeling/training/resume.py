"""Resuming from complete checkpoints only, with the weights actually loaded.

transformers writes ``checkpoint-N`` in place and resumes from the highest-numbered folder whatever it holds, so a kill
during a save leaves a torn checkpoint: :class:`CompleteCheckpointsMixin` writes :data:`COMPLETE_MARKER` last (file
sizes, SHA-256 of the weights) and :func:`resolve_checkpoint` takes the newest folder that still matches it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from accelerate.utils import is_peft_model
from safetensors.torch import load_file
from transformers.conversion_mapping import get_model_conversion_mapping
from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key
from transformers.utils import logging
from trl import SFTTrainer

from fakeinstruct.files import write_text

logger = logging.get_logger(__name__)

COMPLETE_MARKER = "checkpoint_complete.json"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def mark_complete(folder: str | Path, step: int) -> None:
    """Flush the checkpoint's files to disk, then write the marker atomically (a marker that reached the disk before
    the data would vouch for lost writes)."""
    folder = Path(folder)
    files = {
        path.relative_to(folder).as_posix(): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.startswith((COMPLETE_MARKER, f".{COMPLETE_MARKER}"))
    }
    for name in files:
        _fsync(folder / name)
    hashes = {name: sha256(folder / name) for name in files if name.endswith(".safetensors")}
    write_text(folder / COMPLETE_MARKER, json.dumps({"global_step": step, "files": files, "sha256": hashes}, indent=1))
    _fsync(folder)


def incomplete_reason(folder: str | Path) -> str | None:
    """Why ``folder`` is not a complete checkpoint, or None when its files match its marker."""
    folder, marker = Path(folder), Path(folder, COMPLETE_MARKER)
    if not marker.is_file():
        return f"no {COMPLETE_MARKER}"
    try:
        manifest = json.loads(marker.read_text(encoding="utf-8"))
        files, hashes = manifest["files"], manifest.get("sha256", {})
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return f"unreadable {COMPLETE_MARKER}: {error}"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} written"
        if name in hashes and sha256(path) != hashes[name]:
            return f"{name} does not match the SHA-256 it was written with"
    return None


def resolve_checkpoint(value: str | None, output_dir: str) -> str | None:
    """``resume_from_checkpoint``: a folder (without a marker too, with a warning); ``last`` for the newest complete
    ``checkpoint-*`` in ``output_dir``, newer ones skipped with a warning; ``auto``: the same, or None if none."""
    if value is None or value.lower() in ("", "false", "none"):
        return None
    if value.lower() not in ("last", "latest", "true", "auto"):
        if not os.path.isdir(value):
            raise ValueError(f"resume_from_checkpoint: {value} is not a folder")
        reason = incomplete_reason(value)
        if reason is not None and Path(value, COMPLETE_MARKER).exists():
            raise ValueError(f"resume_from_checkpoint: {value} is incomplete ({reason})")
        if reason is not None:
            logger.warning("resume_from_checkpoint: %s has no %s; it may be incomplete", value, COMPLETE_MARKER)
        return value
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.name[11:].isdigit() and p.is_dir()]
    folders = sorted(found, key=lambda p: int(p.name[11:]), reverse=True)
    for folder in folders:
        reason = incomplete_reason(folder)
        if reason is None:
            return str(folder)
        logger.warning("skipping incomplete checkpoint %s (%s); it is safe to delete", folder, reason)
    if folders:  # never silently from scratch over checkpoints
        raise ValueError(f"{output_dir} has checkpoints but none is complete; name one to resume from it anyway")
    if value.lower() != "auto":
        raise ValueError(f"resume_from_checkpoint={value!r} but {output_dir} holds no checkpoint-* folder")
    logger.info("resume_from_checkpoint=auto: no checkpoint in %s, starting from scratch", output_dir)
    return None


class CompleteCheckpointsMixin:
    """For ``Trainer`` subclasses: mark each ``checkpoint-N`` complete once every process has written it, and only
    then rotate old checkpoints out (transformers rotates before the other processes are done)."""

    def _save_checkpoint(self, model, trial):
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

        run_dir = self._get_output_dir(trial=trial)
        folder = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save:  # a re-save overwrites files in place: withdraw the marker first
            Path(folder, COMPLETE_MARKER).unlink(missing_ok=True)
        self.accelerator.wait_for_everyone()  # no process writes into the folder while it still looks complete
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            mark_complete(folder, self.state.global_step)
            best = self.state.best_model_checkpoint
            rotate_checkpoints(output_dir=run_dir, save_total_limit=limit, best_model_checkpoint=best, use_mtime=True)


class ResumableSFTTrainer(CompleteCheckpointsMixin, SFTTrainer):
    """``SFTTrainer`` with complete checkpoints, whose resume loads weights with ``from_pretrained``'s key renaming:
    transformers' ``load_state_dict(strict=False)`` matches no key of LLaVA's saved layout and silently goes on from
    the initial weights (huggingface/transformers#43701). DeepSpeed, FSDP and PEFT keep transformers' own loading."""

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        model = self.model if model is None else model
        files = sorted(Path(resume_from_checkpoint).glob("model*.safetensors"))  # model.safetensors, or its shards
        if not files or self.is_fsdp_enabled or is_peft_model(model):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        transforms = get_model_conversion_mapping(model)
        if any(isinstance(t, WeightConverter) for t in transforms):
            raise ValueError(f"cannot resume {type(model).__name__} here: it converts weights on load; use DeepSpeed")
        renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
        logger.info("loading the weights of %s", resume_from_checkpoint)
        own, state = model.state_dict(), {}
        for file in files:
            for key, tensor in load_file(file, device="cpu").items():
                state[rename_source_key(key, renamings, [], model.base_model_prefix, own)[0]] = tensor
        result = model.load_state_dict(state, strict=False)
        loaded = {own[k].data_ptr() for k in state if k in own}
        missing = [k for k in result.missing_keys if own[k].data_ptr() not in loaded]  # tied weights were loaded
        if missing or result.unexpected_keys:
            unexpected = result.unexpected_keys[:5]
            raise RuntimeError(f"checkpoint does not fit the model: missing {missing[:5]}, unexpected {unexpected}")
