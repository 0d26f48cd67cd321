"""Merge a LoRA run of ``scripts/sft.py`` into a plain checkpoint.

A LoRA run's output folder holds ``adapter_model.safetensors`` (the LoRA matrices of the language model and, through
``modules_to_save``, the fully trained multimodal projector), ``adapter_config.json``, the processor with its chat
template and ``sft_config.json`` (the resolved recipe). :func:`merge_lora` loads the base model the adapter names,
applies the adapter with ``PeftModel.from_pretrained`` and folds it in with ``merge_and_unload()``: the LoRA deltas
are added to the base weights and the trained projector replaces the base one. The result is saved as an ordinary
``AutoModelForImageTextToText`` folder (safetensors only, no adapter files) with the run's processor and chat
template, so it loads with ``from_pretrained(..., trust_remote_code=False)`` and no PEFT.

The base model is always loaded unquantized: merging into 4/8-bit weights would round the merged weights. Its dtype
is the recipe's (``model_args.dtype`` in ``sft_config.json``) unless one is given.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from modeling.safe_loading import PICKLE_SUFFIXES

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
SFT_CONFIG = "sft_config.json"
MERGE_CONFIG = "merge_config.json"


@dataclass(frozen=True)
class MergeSource:
    """What the adapter folder says about its base model (``base_model`` is a Hub id or a folder)."""

    adapter_dir: Path
    base_model: str
    revision: str | None
    dtype: str | None
    modules_to_save: list[str]


def read_source(
    adapter_dir: str | Path, base_model: str | None = None, dtype: str | None = None, revision: str | None = None
) -> MergeSource:
    """The base model, revision and dtype to merge into: the arguments given, else the run's own.

    ``adapter_config.json`` names the base (the path or id the run loaded; a relative path is relative to the folder
    the run was started from, the repository root for the recipes); ``sft_config.json`` gives the revision and dtype.
    """
    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / ADAPTER_CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"{adapter_dir} holds no {ADAPTER_CONFIG}: not a LoRA output of scripts/sft.py")
    adapter = json.loads(config_path.read_text(encoding="utf-8"))
    recipe = {}
    if (adapter_dir / SFT_CONFIG).is_file():
        recipe = json.loads((adapter_dir / SFT_CONFIG).read_text(encoding="utf-8")).get("model_args", {})
    base = base_model or adapter.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{config_path} names no base model; pass one")
    return MergeSource(
        adapter_dir=adapter_dir,
        base_model=base,
        revision=revision or (recipe.get("model_revision") if not base_model else None) or adapter.get("revision"),
        dtype=dtype or recipe.get("dtype"),
        modules_to_save=list(adapter.get("modules_to_save") or []),
    )


def load_peft_model(source: MergeSource):
    """The base model (no remote code, unquantized) with the adapter and the trained ``modules_to_save`` applied."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(
        source.base_model,
        revision=source.revision,
        dtype=source.dtype,  # a name, or None: transformers' default
        trust_remote_code=False,
        use_safetensors=True,
    )
    return PeftModel.from_pretrained(base, source.adapter_dir, is_trainable=False, use_safetensors=True).eval()


def merge_lora(
    adapter_dir: str | Path,
    output_dir: str | Path,
    *,
    base_model: str | None = None,
    dtype: str | None = None,
    revision: str | None = None,
    safe_merge: bool = False,
    overwrite: bool = False,
) -> Path:
    """Merge the LoRA run in ``adapter_dir`` into its base model and save it with the processor in ``output_dir``.

    ``safe_merge`` checks the merged weights for NaNs before keeping them (PEFT's ``safe_merge``). An existing,
    non-empty ``output_dir`` is refused unless ``overwrite``. Returns ``output_dir``.
    """
    from transformers import AutoProcessor

    source = read_source(adapter_dir, base_model, dtype, revision)
    output_dir = Path(output_dir)
    if output_dir.resolve() == source.adapter_dir.resolve():
        raise ValueError("output_dir must differ from the adapter folder")
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{output_dir} is not empty; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(output_dir)

    logger.info("merging %s into %s (dtype %s)", source.adapter_dir, source.base_model, source.dtype or "auto")
    model = load_peft_model(source).merge_and_unload(safe_merge=safe_merge)
    leftovers = [name for name, _ in model.named_modules() if "lora_" in name or "modules_to_save" in name]
    if leftovers:
        raise RuntimeError(f"adapter modules left after merging: {leftovers[:5]}")
    model.config.get_text_config().use_cache = True
    model.save_pretrained(output_dir)  # safetensors (transformers 5 writes nothing else)

    processor = AutoProcessor.from_pretrained(source.adapter_dir, trust_remote_code=False)
    processor.save_pretrained(output_dir)  # tokenizer, image processor and the run's chat template

    for path in output_dir.iterdir():  # a plain checkpoint: no adapter files, no pickles
        if path.name in ADAPTER_FILES or path.name.endswith(PICKLE_SUFFIXES):
            path.unlink()
    if (source.adapter_dir / SFT_CONFIG).is_file():
        shutil.copy2(source.adapter_dir / SFT_CONFIG, output_dir / SFT_CONFIG)
    record = {
        "adapter_dir": str(source.adapter_dir),
        "base_model": source.base_model,
        "revision": source.revision,
        "dtype": str(model.dtype).removeprefix("torch."),
        "modules_to_save": source.modules_to_save,
    }
    (output_dir / MERGE_CONFIG).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    logger.info("saved the merged %s to %s", type(model).__name__, output_dir)
    return output_dir
