"""Conversations, images and a short assistant-only SFT run, shared by the tests of the tiny LLaVA and Idefics3."""

from __future__ import annotations

import numpy as np
from PIL import Image


def image(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def conversation(*turns: tuple[str, str]) -> list[dict]:
    """Messages shaped as `fakeinstruct generate --format trl` writes them: the image block opens turn one."""
    messages = []
    for i, (question, answer) in enumerate(turns):
        content = [{"type": "image", "text": None}] if i == 0 else []
        messages.append({"role": "user", "content": [*content, {"type": "text", "text": question}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


TWO_TURNS = conversation(
    ("Is this image real or fake?", "Fake. The edges are too clean."), ("Why?", "The texture repeats.")
)
ONE_TURN = conversation(("Is this a real photograph?", "Yes."))


def cpu_trainer(model_dir, output_dir, rows: list[dict], **config):
    """An SFTTrainer with assistant-only loss on ``rows`` (``messages`` + ``images``), configured as on CPU;
    ``config`` sets the rest of the SFTConfig (steps, batch size, learning rate)."""
    from datasets import Dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(output_dir),
        use_cpu=True,
        bf16=False,
        max_length=None,
        assistant_only_loss=True,
        report_to=[],
        save_strategy="no",
        **config,
    )
    return SFTTrainer(
        model=AutoModelForImageTextToText.from_pretrained(model_dir),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoProcessor.from_pretrained(model_dir),
    )


def assistant_only_trainer(model_dir, output_dir):
    """A two-step trainer on TWO_TURNS and ONE_TURN."""
    rows = [{"messages": TWO_TURNS, "images": [image(0)]}, {"messages": ONE_TURN, "images": [image(1)]}] * 2
    return cpu_trainer(model_dir, output_dir, rows, per_device_train_batch_size=2, max_steps=2, logging_steps=1)


def assert_trains_two_finite_steps(trainer) -> None:
    assert trainer.train().global_step == 2
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 2 and all(np.isfinite(losses))
