"""Greedy answers to rendered prompts, batched with left padding: explanations and evaluation predictions."""

from __future__ import annotations

from collections.abc import Sequence

import torch


@torch.inference_mode()
def generate_answers(
    estimator, images: Sequence, prompts: Sequence[str], max_new_tokens: int, progress: bool = False
) -> list[str]:
    """One greedy answer per (image, prompt), until EOS or ``max_new_tokens``; ``estimator.batch_size`` per call.

    ``estimator`` is a :class:`~modeling.scoring.probability.TokenProbabilityEstimator`: its model, processor, batch size
    and input encoding (as in training) are shared with scoring.
    """
    from tqdm.auto import tqdm

    answers: list[str] = []
    starts = range(0, len(images), estimator.batch_size)
    for start in tqdm(starts, desc="generating", unit="batch", disable=not progress or len(starts) < 2):
        stop = start + estimator.batch_size
        inputs = estimator.encode(list(images[start:stop]), list(prompts[start:stop]))
        answers += generate_from_inputs(estimator, inputs, max_new_tokens)
    return answers


@torch.inference_mode()
def generate_from_inputs(estimator, inputs, max_new_tokens: int) -> list[str]:
    """Greedy answers for ready model inputs (``estimator.encode``'s, or a data loader's equal ones)."""
    model, tokenizer = estimator.model, estimator.processor.tokenizer
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    output = model.generate(
        **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
