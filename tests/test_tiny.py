"""The tiny offline LLaVA: it reloads with the Auto classes, runs, trains under TRL and tokenizes answers as the
token-probability estimator expects. The checkpoint is built once per module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_assistant_only_labels, masked_runs
from PIL import Image
from safetensors.torch import load_file
from tiny_chat import (
    ONE_TURN,
    TWO_TURNS,
    assert_trains_two_finite_steps,
    assistant_only_trainer,
    conversation,
    cpu_trainer,
    image,
)
from transformers import AutoModelForImageTextToText, AutoProcessor

from modeling.tiny.llava import (
    ANSWER_WORDS,
    ASSISTANT_PREFIX,
    IMAGE_SIZE,
    PATCH_SIZE,
    build_tiny_llava,
    build_tokenizer,
    chat_template,
)

IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("tiny") / "llava")


@pytest.fixture(scope="module")
def processor(tiny_dir):
    return AutoProcessor.from_pretrained(tiny_dir, trust_remote_code=False)


@pytest.fixture(scope="module")
def model(tiny_dir):
    return AutoModelForImageTextToText.from_pretrained(tiny_dir, trust_remote_code=False).eval()


def test_reloads_with_auto_classes(tiny_dir, processor, model):
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert type(processor).__name__ == "LlavaProcessor"
    assert model.config._attn_implementation == "sdpa"
    assert processor.chat_template == processor.tokenizer.chat_template == chat_template()
    assert (
        model.config.image_token_id == processor.image_token_id == processor.tokenizer.convert_tokens_to_ids("<image>")
    )
    assert 100_000 < model.num_parameters() < 1_000_000


def test_writes_safetensors_only(tiny_dir):
    names = {p.name for p in tiny_dir.iterdir()}
    assert "model.safetensors" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]


def test_chat_template_renders_turns_in_place(processor):
    assert processor.apply_chat_template(TWO_TURNS) == (
        "<s><|user|>\n<image>\nIs this image real or fake?</s>\n"
        "<|assistant|>\nFake. The edges are too clean.</s>\n"
        "<|user|>\nWhy?</s>\n"
        "<|assistant|>\nThe texture repeats.</s>\n"
    )
    prompt = processor.apply_chat_template(TWO_TURNS[:1], add_generation_prompt=True)
    assert prompt.endswith("</s>\n" + ASSISTANT_PREFIX)
    plain = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Real?"}]
    assert processor.apply_chat_template(plain) == "<s><|system|>\nBe brief.</s>\n<|user|>\nReal?</s>\n"
    with pytest.raises(Exception, match="unsupported role"):
        processor.apply_chat_template([{"role": "tool", "content": "x"}])


@pytest.mark.parametrize("word", ANSWER_WORDS)
def test_answer_word_is_one_token_after_the_assistant_prefix(processor, word):
    """The scorer reads the logits at the end of the generation prompt: the answer word must be the next token."""
    tokenizer = processor.tokenizer
    messages = conversation(("Is this image real or fake?", f"{word}. The edges are too clean."))
    prompt = tokenizer.encode(processor.apply_chat_template(messages[:1], add_generation_prompt=True))
    full = tokenizer.encode(processor.apply_chat_template(messages))
    assert full[: len(prompt)] == prompt
    assert tokenizer.convert_ids_to_tokens(prompt[:2]) == ["<s>", "<|user|>"]  # one BOS: encoding adds none
    assert tokenizer.convert_ids_to_tokens(prompt[-2:]) == ["<|assistant|>", "Ċ"]
    (word_id,) = tokenizer.encode(word, add_special_tokens=False)
    assert full[len(prompt)] == word_id
    assert tokenizer.decode([word_id]) == word


def test_answer_words_are_one_token_even_when_the_corpus_lacks_them():
    tokenizer = build_tokenizer(["The edges look natural to me."] * 5, vocab_size=300)
    for word in ANSWER_WORDS:
        (word_id,) = tokenizer.encode(word, add_special_tokens=False)
        assert tokenizer.decode([word_id]) == word
    assert tokenizer.tokenize("The edges") == ["The", "Ġedges"]  # the corpus merges still come first


def test_assistant_mask_covers_exactly_the_answers(processor):
    out = processor.apply_chat_template(
        [TWO_TURNS, ONE_TURN],
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
        processor_kwargs={"images": [[image(0)], [image(1)]], "padding": True},
    )
    tokenizer = processor.tokenizer
    for ids, mask, answers in zip(
        out["input_ids"],
        out["assistant_masks"],
        (["Fake. The edges are too clean.", "The texture repeats."], ["Yes."]),
        strict=True,
    ):
        runs = masked_runs(ids, mask)
        assert [tokenizer.decode(r) for r in runs] == [a + "</s>" for a in answers]
        assert ids.count(processor.image_token_id) == IMAGE_TOKENS


def test_forward_with_left_padding(processor, model):
    batch = processor.apply_chat_template(
        [TWO_TURNS[:1], conversation(("Real?", "Real."))[:1]],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"images": [[image(0)], [image(1, (128, 128))]], "padding": True, "padding_side": "left"},
    )
    ids, attention = batch["input_ids"], batch["attention_mask"]
    assert (
        attention[0].all() and attention[1, -1] and not attention[1, 0]
    )  # left padded: the short row starts with pads
    assert (ids == model.config.image_token_id).sum(-1).tolist() == [IMAGE_TOKENS, IMAGE_TOKENS]
    features = model.get_image_features(pixel_values=batch["pixel_values"]).pooler_output
    assert [f.shape[0] for f in features] == [IMAGE_TOKENS, IMAGE_TOKENS]
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (*ids.shape, model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()
    # The padded row's next-token logits equal those of the same prompt run alone.
    short = 1
    alone = {k: v[short : short + 1, -int(attention[short].sum()) :] for k, v in batch.items() if k != "pixel_values"}
    with torch.no_grad():
        single = model(**alone, pixel_values=batch["pixel_values"][short : short + 1]).logits
    torch.testing.assert_close(logits[short, -1], single[0, -1], atol=1e-4, rtol=1e-4)


def test_same_seed_same_weights(tiny_dir, tmp_path):
    again = load_file(build_tiny_llava(tmp_path / "again") / "model.safetensors")
    first = load_file(tiny_dir / "model.safetensors")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert (tiny_dir / "tokenizer.json").read_bytes() == (tmp_path / "again" / "tokenizer.json").read_bytes()
    other = load_file(build_tiny_llava(tmp_path / "other", seed=1) / "model.safetensors")
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_siglip_tower_matches_its_processor(tmp_path):
    path = build_tiny_llava(tmp_path / "siglip", vision="siglip")
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    batch = processor.apply_chat_template(
        ONE_TURN, tokenize=True, return_dict=True, return_tensors="pt", processor_kwargs={"images": [image(2)]}
    )
    assert (batch["input_ids"] == model.config.image_token_id).sum() == IMAGE_TOKENS
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()


def test_sft_trainer_trains_on_assistant_tokens_only(tiny_dir, tmp_path):
    trainer = assistant_only_trainer(tiny_dir, tmp_path / "sft")
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    tokenizer = trainer.processing_class.tokenizer
    assert_assistant_only_labels(batch, tokenizer, trainer.model.config.image_token_id, IMAGE_TOKENS)
    assert_trains_two_finite_steps(trainer)


def test_the_sample_reaches_the_tower_at_its_own_resolution(processor):
    """A 112-px sample image goes in at 112 px: nothing is downscaled, so traces a few pixels wide reach the tower
    (the earlier tiny model saw 32 px, and could not see them)."""
    from conftest import SAMPLE
    from PIL import Image

    with Image.open(SAMPLE / "images" / "sample-0001.jpg") as img:
        pixels = processor.image_processor(images=[img.convert("RGB")], return_tensors="pt")["pixel_values"]
        size = img.size
    assert size == (112, 112) and pixels.shape[-2:] == (112, 112) and IMAGE_SIZE >= 112
    assert IMAGE_TOKENS == (112 // PATCH_SIZE) ** 2 == 64


def _textured(seed: int, fake: bool, shrink: bool) -> Image.Image:
    """Noise around mid-grey; a fake adds a checkerboard of 2-px squares (a trace a few pixels wide, like
    resampling's). ``shrink`` passes the image through 32 px first, as the earlier tiny model saw it."""
    pixels = np.random.default_rng(seed).normal(128, 30, (112, 112, 3))
    if fake:
        y, x = np.mgrid[:112, :112]
        pixels += 40 * (((x // 2 + y // 2) % 2) * 2 - 1)[..., None]
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if shrink:
        img = img.resize((32, 32), Image.BICUBIC).resize((112, 112), Image.BICUBIC)
    return img


def _texture_auc(tiny_dir, output_dir, shrink: bool) -> float:
    """Test AUC of the token probability after 30 assistant-only SFT steps on 64 labelled textures."""
    from sklearn.metrics import roc_auc_score

    from modeling.scoring.probability import ClosedQuestion, TokenProbabilityEstimator

    question = "Is this image real or fake?"
    rows = [
        {"messages": conversation((question, "Fake." if i % 2 else "Real.")), "images": [_textured(i, i % 2, shrink)]}
        for i in range(64)
    ]
    trainer = cpu_trainer(
        tiny_dir, output_dir, rows, per_device_train_batch_size=8, max_steps=30, learning_rate=2e-3, seed=0
    )
    trainer.train()
    model, processor = trainer.model, trainer.processing_class
    labels = [i % 2 for i in range(64)]
    test = [_textured(1000 + i, label, shrink) for i, label in enumerate(labels)]
    scores = TokenProbabilityEstimator(model.eval(), processor).score(test, ClosedQuestion(question, "Fake", "Real"))
    return float(roc_auc_score(labels, scores.p))


def test_the_tiny_model_learns_a_trace_two_pixels_wide_through_sft(tiny_dir, tmp_path):
    """The pixels reach the answer: the fine-tuned tiny model tells held-out textures apart by a 2-px pattern, and
    cannot once the images went through 32 px (the pattern is gone; that was the earlier blind model)."""
    assert _texture_auc(tiny_dir, tmp_path / "seen", shrink=False) >= 0.95
    assert _texture_auc(tiny_dir, tmp_path / "shrunk", shrink=True) <= 0.75
