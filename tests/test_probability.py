"""The token-probability estimator against a hand computation from the full logits, batched and unbatched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeling.scoring.probability import (
    ClosedQuestion,
    ScoringError,
    TokenProbabilityEstimator,
    answer_plan,
    prompt_text,
)

DETECT = ClosedQuestion("Is this image real or fake?", "Fake", "Real")
QUESTIONS = [
    DETECT,
    ClosedQuestion("Real or fake?", "Fake", "Real"),
    ClosedQuestion("Would you say this photo is real or fake? Look closely at the texture and edges.", "Fake", "Real"),
]
LLAVA_TEMPLATE = "recipes/llava-1.5-7b/chat_template.jinja"


@pytest.fixture(scope="module")
def loaded(tiny_model):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(tiny_model)


def images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(32, 32), (48, 40), (64, 64), (40, 56)]
    return [Image.fromarray(rng.integers(0, 256, (*sizes[i % 4], 3), dtype=np.uint8)) for i in range(n)]


def hand_scores(model, processor, image, question: ClosedQuestion, raw: bool = False) -> tuple[float, float]:
    """log p(word | prompt) for both words from one unpadded forward pass over the prompt followed by the word's
    tokens as the chat template renders them (the full logits, no logits_to_keep); with ``raw``, the summed raw
    logits of the word's tokens instead (the FakeScope paper's score)."""
    prompt = prompt_text(processor, question.question)
    out = []
    for word in (question.positive, question.negative):
        full = processor.apply_chat_template(
            [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question.question}]},
                {"role": "assistant", "content": [{"type": "text", "text": word}]},
            ],
            tokenize=False,
        )
        answer = full[len(prompt) :]
        answer = answer[: answer.index(word) + len(word)]
        n_prompt = len(processor.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        inputs = processor(images=[image], text=[prompt + answer], return_tensors="pt", add_special_tokens=False)
        ids = inputs["input_ids"][0]
        n_image = int((ids == model.config.image_token_index).sum()) - 1  # the prompt's <image> was expanded
        start = n_prompt + n_image
        with torch.no_grad():
            logits = model(**inputs).logits[0].double()
            logprobs = logits if raw else torch.log_softmax(logits, dim=-1)
        out.append(sum(float(logprobs[t - 1, ids[t]]) for t in range(start, len(ids))))
    return out[0], out[1]


def test_single_token_words_read_one_position(loaded):
    _model, processor = loaded
    plan = answer_plan(processor, DETECT.question, "Fake", "Real")
    assert plan.single_position
    assert processor.tokenizer.convert_ids_to_tokens([plan.positive[0], plan.negative[0]]) == ["Fake", "Real"]


def test_matches_hand_computation_and_batched_equals_unbatched(loaded):
    model, processor = loaded
    pics = images(6)
    questions = [QUESTIONS[i % 3] for i in range(6)]  # prompts of different lengths: left padding in every batch
    batched = TokenProbabilityEstimator(model, processor, batch_size=4).score(pics, questions)
    one = TokenProbabilityEstimator(model, processor, batch_size=1).score(pics, questions)
    np.testing.assert_allclose(batched.logit, one.logit, atol=1e-5, rtol=0)
    np.testing.assert_allclose(batched.p, one.p, atol=1e-5, rtol=0)
    for i, (pic, question) in enumerate(zip(pics, questions, strict=True)):
        pos, neg = hand_scores(model, processor, pic, question)
        assert batched.positive_logprob[i] == pytest.approx(pos, abs=1e-5)
        assert batched.negative_logprob[i] == pytest.approx(neg, abs=1e-5)
        assert batched.p[i] == pytest.approx(np.exp(pos) / (np.exp(pos) + np.exp(neg)), abs=1e-6)
    assert np.all(batched.logit == batched.positive_logprob - batched.negative_logprob)


def test_multi_token_words_sum_their_tokens(loaded):
    model, processor = loaded
    question = ClosedQuestion("Is this image real or fake?", "Fake image", "Real photo")
    plan = answer_plan(processor, question.question, question.positive, question.negative)
    assert not plan.single_position and len(plan.positive) > 1 and len(plan.negative) > 1
    pics = images(5, seed=1)
    batched = TokenProbabilityEstimator(model, processor, batch_size=3).score(pics, question)
    one = TokenProbabilityEstimator(model, processor, batch_size=1).score(pics, question)
    np.testing.assert_allclose(batched.logit, one.logit, atol=1e-5, rtol=0)
    for i, pic in enumerate(pics):
        pos, neg = hand_scores(model, processor, pic, question)
        assert batched.positive_logprob[i] == pytest.approx(pos, abs=1e-5)
        assert batched.negative_logprob[i] == pytest.approx(neg, abs=1e-5)


def test_leading_space_variant_follows_the_chat_template(tiny_model):
    """With LLaVA-1.5's template the answer follows "ASSISTANT:" after a space: the plan scores " Fake"."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model)
    template = Path(LLAVA_TEMPLATE).read_text(encoding="utf-8")
    processor.chat_template = processor.tokenizer.chat_template = template
    plan = answer_plan(processor, DETECT.question, "Fake", "Real")
    tokenizer = processor.tokenizer
    assert tokenizer.decode(list(plan.positive)) == " Fake"
    assert tokenizer.decode(list(plan.negative)) == " Real"
    model = AutoModelForImageTextToText.from_pretrained(tiny_model).eval()
    pic = images(1)[0]
    scores = TokenProbabilityEstimator(model, processor).score([pic], DETECT)
    pos, neg = hand_scores(model, processor, pic, DETECT)
    assert scores.positive_logprob[0] == pytest.approx(pos, abs=1e-5)
    assert scores.negative_logprob[0] == pytest.approx(neg, abs=1e-5)


def test_bfloat16_is_close_to_float32(tiny_model, loaded):
    from transformers import AutoModelForImageTextToText

    model, processor = loaded
    bf16 = AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.bfloat16).eval()
    pics = images(4, seed=2)
    full = TokenProbabilityEstimator(model, processor).score(pics, DETECT)
    half = TokenProbabilityEstimator(bf16, processor).score(pics, DETECT)
    assert half.p.dtype == np.float64 and np.all(np.isfinite(half.p))
    np.testing.assert_allclose(half.p, full.p, atol=0.02)


def test_identical_words_and_bad_batch_size_are_refused(loaded):
    model, processor = loaded
    with pytest.raises(ScoringError, match="tokenise identically"):
        answer_plan(processor, DETECT.question, "Fake", "Fake")
    with pytest.raises(ValueError, match="batch_size"):
        TokenProbabilityEstimator(model, processor, batch_size=0)
    with pytest.raises(ValueError, match="2 images but 1 questions"):
        TokenProbabilityEstimator(model, processor).score(images(2), [DETECT])


def test_fakescope_formula_against_hand_computation(loaded):
    """Summed raw logits (the paper's formula): the same p as log-probabilities for one-token words, a different
    one, computed by hand, for multi-token words."""
    model, processor = loaded
    pics = images(4, seed=2)
    paper = TokenProbabilityEstimator(model, processor, batch_size=3, formula="fakescope")
    ours = TokenProbabilityEstimator(model, processor, batch_size=3)
    single_paper, single_ours = paper.score(pics, DETECT), ours.score(pics, DETECT)
    np.testing.assert_allclose(single_paper.p, single_ours.p, atol=1e-6, rtol=0)
    assert not np.allclose(single_paper.positive_logprob, single_ours.positive_logprob)  # raw logits, not log-probs
    question = ClosedQuestion("Is this image real or fake?", "Fake image", "Real photo")
    multi_paper, multi_ours = paper.score(pics, question), ours.score(pics, question)
    for i, pic in enumerate(pics):
        pos, neg = hand_scores(model, processor, pic, question, raw=True)
        assert multi_paper.positive_logprob[i] == pytest.approx(pos, abs=1e-5)
        assert multi_paper.negative_logprob[i] == pytest.approx(neg, abs=1e-5)
        assert multi_paper.p[i] == pytest.approx(1 / (1 + np.exp(neg - pos)), abs=1e-6)
    assert np.abs(multi_paper.p - multi_ours.p).max() > 1e-4
    with pytest.raises(ValueError, match="score formula must be one of"):
        TokenProbabilityEstimator(model, processor, formula="softmax")
