"""Finding and safely loading a checkpoint: a local folder or a Hub repo, safetensors only, no remote code, and a
chat template that renders within the render budget (:mod:`modeling.scoring.chat_template`).

A checkpoint from the Hub is someone else's file: pickle weights (``.bin``, ``.pt``, ``.pkl``, ``.ckpt``) run code
when loaded, so they are never downloaded and a folder that has nothing else is refused with a clear message.
Remote code is never trusted.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# Everything a detector checkpoint holds; pickles and arbitrary Python files are left on the server.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.md", "calibration/*"]


class UnsafeCheckpointError(ValueError):
    """The checkpoint offers weights only in a format that can run code on load."""


def resolve_checkpoint_dir(name_or_path: str | Path, *, revision: str | None = None, token: str | None = None) -> Path:
    """A local folder as it is, else a snapshot of the Hub repo ``name_or_path`` at ``revision``."""
    path = Path(name_or_path)
    if path.is_dir():
        if revision is not None:
            raise ValueError(f"revision={revision!r} was given but {path} is a local folder")
        return path
    if path.exists():
        raise ValueError(f"{path} is a file; expected a checkpoint folder or a Hub repo id")
    from huggingface_hub import snapshot_download

    logger.info("downloading %s%s", name_or_path, f" at {revision}" if revision else "")
    return Path(snapshot_download(str(name_or_path), revision=revision, token=token, allow_patterns=ALLOW_PATTERNS))


def require_safetensors(folder: Path) -> None:
    """Refuse a folder whose weights exist only as pickles."""
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise UnsafeCheckpointError(
            f"{folder} has weights only in pickle format ({', '.join(pickles)}), which can run code when loaded; "
            "convert them to safetensors in an environment you trust (load, then save_pretrained) and retry"
        )
    raise FileNotFoundError(f"{folder} has no *.safetensors weights")


def load_model_and_processor(folder: Path, *, dtype=None, device=None, attn_implementation: str = "sdpa"):
    """The image-text-to-text model (eval mode) and its processor from ``folder``, with no remote code."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    require_safetensors(folder)
    model = AutoModelForImageTextToText.from_pretrained(
        folder,
        dtype=dtype if dtype is not None else "auto",
        attn_implementation=attn_implementation,
        trust_remote_code=False,
        use_safetensors=True,
    )
    if device is not None:
        model.to(device)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=False)
    from modeling.scoring.chat_template import check_chat_template

    check_chat_template(processor, str(folder))  # a hostile chat template is refused here, in one line
    return model.eval(), processor
