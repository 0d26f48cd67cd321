"""The tiny offline Idefics3: it reloads with the Auto classes, renders the Idefics3 recipe's chat template, trains
under TRL on the answers only and is scored by the token-probability estimator unchanged. Built once per module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_chat import ONE_TURN, TWO_TURNS, assert_trains_two_finite_steps, assistant_only_trainer, conversation, image
from transformers import AutoModelForImageTextToText, AutoProcessor

from modeling.scoring.probability import ClosedQuestion, TokenProbabilityEstimator, prompt_text
from modeling.tiny.idefics3 import (
    CHAT_TEMPLATE_PATH,
    EOS,
    FAKE_IMAGE,
    GENERATION_PROMPT,
    GLOBAL_IMAGE,
    IMAGE,
    IMAGE_SEQ_LEN,
    IMAGE_SIZE,
    build_tiny_idefics3,
)
from modeling.tiny.llava import ANSWER_WORDS

# per image: <fake_token_around_image><global-img><image>*16<fake_token_around_image>
IMAGE_FRAME = 3


def assert_idefics3_assistant_only_labels(batch, tokenizer, image_tokens: int) -> None:
    """Labels must equal the ids from after ``Assistant:`` through the turn's ``<end_of_utterance>``, and be -100
    elsewhere: on the prompt, the padding and every image, frame and global-image token."""
    prefix = tokenizer.encode(GENERATION_PROMPT, add_special_tokens=False)
    eou = tokenizer.convert_tokens_to_ids(EOS)
    image_ids = set(tokenizer.convert_tokens_to_ids([IMAGE, FAKE_IMAGE, GLOBAL_IMAGE]))
    for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True):
        expected, inside = [], False
        for i, token in enumerate(ids):
            inside = inside or (i >= len(prefix) and ids[i - len(prefix) : i] == prefix)
            expected.append(token if inside else -100)
            inside = inside and token != eou
        assert labels == expected
        assert any(label != -100 for label in labels)
        image_labels = [label for token, label in zip(ids, labels, strict=True) if token in image_ids]
        assert image_labels == [-100] * (image_tokens + IMAGE_FRAME)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_idefics3(tmp_path_factory.mktemp("tiny") / "idefics3")


@pytest.fixture(scope="module")
def processor(tiny_dir):
    return AutoProcessor.from_pretrained(tiny_dir, trust_remote_code=False)


@pytest.fixture(scope="module")
def model(tiny_dir):
    return AutoModelForImageTextToText.from_pretrained(tiny_dir, trust_remote_code=False).eval()


def test_reloads_with_auto_classes(tiny_dir, processor, model):
    assert type(model).__name__ == "Idefics3ForConditionalGeneration"
    assert type(processor).__name__ == "Idefics3Processor"
    assert type(processor.image_processor).__name__ == "Idefics3ImageProcessorPil"  # no torchvision needed
    assert processor.image_processor.do_image_splitting is False and processor.image_seq_len == IMAGE_SEQ_LEN == 16
    assert model.config._attn_implementation == "sdpa"
    assert processor.chat_template == processor.tokenizer.chat_template == CHAT_TEMPLATE_PATH.read_text()
    assert model.config.image_token_id == processor.image_token_id == processor.tokenizer.convert_tokens_to_ids(IMAGE)
    assert processor.tokenizer.eos_token == EOS == "<end_of_utterance>"
    assert model.generation_config.eos_token_id == processor.tokenizer.eos_token_id
    assert 100_000 < model.num_parameters() < 1_000_000
    names = {p.name for p in tiny_dir.iterdir()}
    assert "model.safetensors" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]


def test_chat_template_renders_the_idefics3_format(processor):
    assert processor.apply_chat_template(TWO_TURNS) == (
        "<|begin_of_text|>User:<image>Is this image real or fake?<end_of_utterance>\n"
        "Assistant: Fake. The edges are too clean.<end_of_utterance>\n"
        "User: Why?<end_of_utterance>\n"
        "Assistant: The texture repeats.<end_of_utterance>\n"
    )
    prompt = processor.apply_chat_template(TWO_TURNS[:1], add_generation_prompt=True)
    assert prompt.endswith("<end_of_utterance>\nAssistant:")
    plain = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Real?"}]
    assert processor.apply_chat_template(plain) == (
        "<|begin_of_text|>System: Be brief.<end_of_utterance>\nUser: Real?<end_of_utterance>\n"
    )
    with pytest.raises(Exception, match="unsupported role"):
        processor.apply_chat_template([{"role": "tool", "content": "x"}])


@pytest.mark.parametrize("word", ANSWER_WORDS)
def test_answer_word_is_one_token_after_the_generation_prompt(processor, word):
    """The estimator reads the logits at the end of "Assistant:": the answer word, with its space, comes next."""
    tokenizer = processor.tokenizer
    messages = conversation(("Is this image real or fake?", f"{word}. The edges are too clean."))
    prompt = tokenizer.encode(processor.apply_chat_template(messages[:1], add_generation_prompt=True))
    full = tokenizer.encode(processor.apply_chat_template(messages))
    assert full[: len(prompt)] == prompt
    assert tokenizer.convert_ids_to_tokens(prompt[:1]) == ["<|begin_of_text|>"]  # one BOS: encoding adds none
    (word_id,) = tokenizer.encode(" " + word, add_special_tokens=False)
    assert full[len(prompt)] == word_id
    assert tokenizer.decode([word_id]) == " " + word


def test_images_become_one_framed_tile_and_run(processor, model):
    batch = processor.apply_chat_template(
        [TWO_TURNS[:1], conversation(("Real?", "Real."))[:1]],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"images": [[image(0)], [image(1, (128, 96))]], "padding": True, "padding_side": "left"},
    )
    assert batch["pixel_values"].shape == (2, 1, 3, IMAGE_SIZE, IMAGE_SIZE)  # one tile per image, no splitting
    tokens = processor.tokenizer.convert_ids_to_tokens
    for ids in batch["input_ids"].tolist():
        start = ids.index(processor.fake_image_token_id)
        frame = [FAKE_IMAGE, GLOBAL_IMAGE, *[IMAGE] * IMAGE_SEQ_LEN, FAKE_IMAGE]
        assert tokens(ids[start : start + len(frame)]) == frame
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (*batch["input_ids"].shape, model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()


def test_assistant_mask_holds_when_images_are_split_into_tiles(processor, model):
    """Idefics3-8B's processor splits images into tiles by default: the mask must still cover the answers only."""
    out = processor.apply_chat_template(
        [TWO_TURNS, ONE_TURN],
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        return_assistant_tokens_mask=True,
        processor_kwargs={
            "images": [[image(0, (64, 48))], [image(1, (30, 64))]],
            "padding": True,
            "do_image_splitting": True,
            "size": {"longest_edge": 2 * IMAGE_SIZE},
        },
    )
    assert out["pixel_values"].shape[:2] == (2, 5)  # 2 x 2 tiles + the global view; 1 x 2 + global, padded
    tokenizer = processor.tokenizer
    tiles = [[t for t in tokenizer.convert_ids_to_tokens(ids) if t.startswith("<row_")] for ids in out["input_ids"]]
    assert tiles == [
        ["<row_1_col_1>", "<row_1_col_2>", "<row_2_col_1>", "<row_2_col_2>"],
        ["<row_1_col_1>", "<row_1_col_2>"],
    ]
    masks = out.pop("assistant_masks")
    answers = [tokenizer.decode(ids[mask.bool()]) for ids, mask in zip(out["input_ids"], masks, strict=True)]
    assert answers == [
        " Fake. The edges are too clean.<end_of_utterance> The texture repeats.<end_of_utterance>",
        " Yes.<end_of_utterance>",
    ]
    with torch.no_grad():
        assert torch.isfinite(model(**out).logits).all()


def test_sft_trainer_trains_on_assistant_tokens_only(tiny_dir, tmp_path):
    trainer = assistant_only_trainer(tiny_dir, tmp_path / "sft")
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    tokenizer = trainer.processing_class.tokenizer
    assert_idefics3_assistant_only_labels(batch, tokenizer, IMAGE_SEQ_LEN)
    # the answers with their leading space, each closed by its end token
    answers = [tokenizer.decode([t for t in labels if t != -100]) for labels in batch["labels"].tolist()]
    assert answers == [
        " Fake. The edges are too clean.<end_of_utterance> The texture repeats.<end_of_utterance>",
        " Yes.<end_of_utterance>",
    ]
    assert_trains_two_finite_steps(trainer)


def test_token_probability_estimator_scores_batched_as_unbatched(processor, model):
    # prompts of different lengths share one answer plan, so a batch of them is left-padded
    short = ClosedQuestion("Real or fake?", positive="Fake", negative="Real")
    long = ClosedQuestion("Look closely at the edges and textures. Is this image real or fake?", "Fake", "Real")
    questions = [short, long, long, short, long]
    images = [image(seed, size) for seed, size in enumerate([(48, 40), (32, 32), (90, 120), (64, 64), (40, 48)])]
    batched = TokenProbabilityEstimator(model, processor, batch_size=3)
    plan = batched.plan(short)
    assert plan.single_position and batched.plan(long) == plan  # " Fake" / " Real": one token after "Assistant:"
    assert processor.tokenizer.decode(list(plan.positive)) == " Fake"
    inputs = batched.encode(images[:3], [prompt_text(processor, q.question) for q in questions[:3]])
    assert not inputs["attention_mask"][0, 0] and inputs["attention_mask"][1].all()  # left padding is exercised
    scores = batched.score(images, questions)
    alone = TokenProbabilityEstimator(model, processor, batch_size=1).score(images, questions)
    assert np.isfinite(scores.logit).all() and ((scores.p > 0) & (scores.p < 1)).all()
    np.testing.assert_allclose(scores.logit, alone.logit, atol=1e-5, rtol=0)
    np.testing.assert_allclose(scores.positive_logprob, alone.positive_logprob, atol=1e-5, rtol=0)
    assert len(set(np.round(scores.logit, 6))) > 1  # the image reaches the answer's logits


def test_build_script_writes_the_tiny_idefics3(tiny_dir, tmp_path):
    """scripts/build_tiny_model.py --arch idefics3: the folder a recipe names as its model_name_or_path."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "build_tiny_model.py"
    spec = importlib.util.spec_from_file_location("build_tiny_model", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--output-dir", str(tmp_path / "built"), "--arch", "idefics3"])
    assert json.loads((tmp_path / "built" / "config.json").read_text())["model_type"] == "idefics3"
    built, first = load_file(tmp_path / "built" / "model.safetensors"), load_file(tiny_dir / "model.safetensors")
    assert built.keys() == first.keys() and all(
        torch.equal(built[k], first[k]) for k in first
    )  # the builder's defaults
    with pytest.raises(SystemExit):
        script.main(["--output-dir", str(tmp_path / "other"), "--arch", "idefics3", "--vision", "clip"])


def test_same_seed_same_weights(tiny_dir, tmp_path):
    again = load_file(build_tiny_idefics3(tmp_path / "again") / "model.safetensors")
    first = load_file(tiny_dir / "model.safetensors")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert (tiny_dir / "tokenizer.json").read_bytes() == (tmp_path / "again" / "tokenizer.json").read_bytes()


def test_freeze_vision_tower_finds_the_idefics3_vision_model(model):
    import copy

    from modeling.training.sft import freeze_vision_tower

    model = copy.deepcopy(model)  # the fixture is shared
    frozen = freeze_vision_tower(model)
    vision = model.model.vision_model
    assert frozen == sum(p.numel() for p in vision.parameters()) > 0
    assert not any(p.requires_grad for p in vision.parameters())
    assert any(p.requires_grad for p in model.model.text_model.parameters())
