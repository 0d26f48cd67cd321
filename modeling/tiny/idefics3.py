"""Build a tiny Idefics3 and its processor offline, from configs, in seconds.

The Idefics3 recipe (``recipes/idefics3-8b``) is checked on CPU the way the LLaVA ones are: on a real
``Idefics3ForConditionalGeneration`` (SigLIP-style vision tower, pixel-shuffle connector, Llama text model, a few
hundred thousand parameters) that loads with the Auto classes and trains under ``SFTTrainer``. Everything is built
here, from :mod:`modeling.tiny.llava`'s pieces: a byte-level BPE trained on FakeInstruct text with Idefics3's special
tokens, the recipe's chat template (so the tiny model renders exactly what the 8B recipe trains on), the PIL image
processor (``Idefics3ImageProcessorPil``: the default ``Idefics3ImageProcessor`` is the torchvision backend) and
randomly initialised weights, seeded.

Images are taken as one 112x112 tile (the bundled sample's own size), without splitting: 8x8 patches of 14 pixels,
pixel-shuffled by 2 into 16 image tokens, framed as ``<fake_token_around_image><global-img><image>*16
<fake_token_around_image>``.

The answer follows ``"Assistant:"`` with a leading space, as in Idefics3's own template; the token-probability
estimator reads the answer word right there, so :func:`build_tokenizer` makes each of ``" Fake"``, ``" Real"``...
one token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import torch
from transformers import (
    AutoModelForImageTextToText,
    Idefics3Config,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    Idefics3VisionConfig,
    PreTrainedTokenizerFast,
)

from modeling.tiny.llava import ANSWER_WORDS, builtin_corpus, tiny_text_config, tiny_vision_kwargs, train_bpe

logger = logging.getLogger(__name__)

# The template lives with the recipe it trains; the tiny model is built from a checkout, where both are.
CHAT_TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "recipes" / "idefics3-8b" / "chat_template.jinja"
BOS, EOS, PAD = "<|begin_of_text|>", "<end_of_utterance>", "<pad>"
IMAGE, FAKE_IMAGE, GLOBAL_IMAGE = "<image>", "<fake_token_around_image>", "<global-img>"
# Tiles of a split image are marked <row_i_col_j> (6 x 6 at most): the 8B processor splits by default, and so can
# this one when asked (do_image_splitting=True), so the tiny model has them too.
TILE_TOKENS = tuple(f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7))
SPECIAL_TOKENS = (PAD, BOS, EOS, FAKE_IMAGE, IMAGE, GLOBAL_IMAGE, *TILE_TOKENS)
GENERATION_PROMPT = "Assistant:"
IMAGE_SIZE, PATCH_SIZE, SCALE_FACTOR = 112, 14, 2
IMAGE_SEQ_LEN = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR**2


def chat_template() -> str:
    if not CHAT_TEMPLATE_PATH.is_file():
        raise FileNotFoundError(f"{CHAT_TEMPLATE_PATH} not found: build the tiny Idefics3 from a repository checkout")
    return CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")


def build_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``corpus`` (default: :func:`modeling.tiny.llava.builtin_corpus`) with Idefics3's
    special tokens; BOS ``<|begin_of_text|>``, EOS ``<end_of_utterance>`` (the token that ends an answer).

    The chat template writes both; nothing is added on encode. The processor registers its image tokens as the
    extra special tokens when it is built.
    """
    texts = list(builtin_corpus() if corpus is None else corpus)
    answer_words = [" " + word for word in ANSWER_WORDS]
    return PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(texts, vocab_size, SPECIAL_TOKENS, answer_words),
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=2048,
        chat_template=chat_template(),
    )


def build_processor(tokenizer: PreTrainedTokenizerFast) -> Idefics3Processor:
    """An ``Idefics3Processor`` whose ``<image>`` expansion matches the model: one 32x32 tile, 16 image tokens."""
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False,
        size={"longest_edge": IMAGE_SIZE},
        max_image_size={"longest_edge": IMAGE_SIZE},
    )
    return Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=IMAGE_SEQ_LEN,
        chat_template=chat_template(),
    )


def tiny_idefics3_config(tokenizer: PreTrainedTokenizerFast, hidden_size: int = 64) -> Idefics3Config:
    """Two vision layers, the connector and two Llama layers; embeddings tied to keep the count small."""
    vision = Idefics3VisionConfig(**tiny_vision_kwargs(hidden_size, IMAGE_SIZE, PATCH_SIZE))
    text = tiny_text_config(tokenizer, hidden_size)
    return Idefics3Config(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE),
        scale_factor=SCALE_FACTOR,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )


def build_tiny_idefics3(
    output_dir: str | Path,
    *,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    seed: int = 0,
) -> Path:
    """Write a tiny Idefics3 checkpoint (safetensors) with its processor and chat template; return the folder.

    Deterministic: the same arguments give identical tokenizer and weights. The global torch RNG is left as it was.
    """
    output_dir = Path(output_dir)
    tokenizer = build_tokenizer(corpus, vocab_size)
    processor = build_processor(tokenizer)
    config = tiny_idefics3_config(tokenizer, hidden_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, attn_implementation="sdpa")
    model.generation_config.update(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    params = sum(p.numel() for p in model.parameters())
    logger.info("tiny Idefics3: %d parameters, vocabulary %d, in %s", params, len(tokenizer), output_dir)
    return output_dir
