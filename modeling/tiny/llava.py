"""Build a tiny LLaVA-style model and its processor offline, from configs, in seconds.

The demo, the tests and the CPU recipes need a real ``LlavaForConditionalGeneration`` checkpoint (CLIP or
SigLIP vision tower + projector + Llama text model, about 230k parameters) that loads with the Auto classes,
takes TRL's conversational rows and trains under ``SFTTrainer``; but nothing may be downloaded. So everything
is built here: a byte-level BPE tokenizer trained on FakeInstruct text, the chat template in
``chat_template.jinja``, a PIL-only image processor (no torchvision) and randomly initialised weights, seeded
so that one call always gives the same checkpoint.

The closed-ended answer words must each be exactly one token where the token-probability estimator reads them:
right after the assistant prefix ``<|assistant|>\\n``, with no leading space. BPE training alone does not
promise that, so :func:`build_tokenizer` appends the merges that are missing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForImageTextToText,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    SiglipVisionConfig,
)

logger = logging.getLogger(__name__)

CHAT_TEMPLATE_PATH = Path(__file__).with_name("chat_template.jinja")
BOS, EOS, PAD, IMAGE = "<s>", "</s>", "<pad>", "<image>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (PAD, BOS, EOS, IMAGE, *ROLE_TOKENS)
ASSISTANT_PREFIX = "<|assistant|>\n"
# First words of closed-ended answers (detection, yes/no, multiple choice, attribute verdicts).
ANSWER_WORDS = ("Fake", "Real", "Yes", "No", "A", "B", "fake", "real")
# 112x112 images, the bundled sample's own size (nothing is downscaled: the traces a GAN upscaler leaves are a few pixels
# wide), cut into 14x14 patches as CLIP ViT-L/14 cuts them: 64 image features, so 64 <image> tokens per image.
IMAGE_SIZE, PATCH_SIZE = 112, 14


@dataclass(frozen=True)
class VisionTower:
    """A vision backbone and the token arithmetic that goes with it.

    ``extra_tokens`` embeddings come out besides the patches (CLIP's CLS); the "default" feature strategy drops
    the first one, "full" keeps all. The processor must expand ``<image>`` by exactly what the model keeps.
    """

    config_class: type
    extra_tokens: int
    select_strategy: str
    config_kwargs: dict = field(default_factory=dict)


VISION_TOWERS = {
    "clip": VisionTower(CLIPVisionConfig, extra_tokens=1, select_strategy="default"),  # LLaVA-1.5
    "siglip": VisionTower(SiglipVisionConfig, 0, "full", {"vision_use_head": False}),  # no CLS, pooling head unused
}


def chat_template() -> str:
    return CHAT_TEMPLATE_PATH.read_text(encoding="utf-8")


def builtin_corpus(seeds: Iterable[int] = range(4)) -> list[str]:
    """Questions and answers the built-in templates render for the probe records, one string each.

    Expanding the real templates (rather than a hand-written word list) gives the tokenizer the vocabulary and
    the answer-first phrasing that FakeInstruct data has.
    """
    from fakeinstruct.chain.taxonomy import load_taxonomy
    from fakeinstruct.generation.expand import Expander
    from fakeinstruct.templating.probes import probe_chains
    from fakeinstruct.templating.registry import load_registry

    registry, taxonomy = load_registry(entry_points=False), load_taxonomy()
    texts = []
    for seed in seeds:
        expander = Expander(registry, taxonomy, seed)
        for chain in probe_chains():
            for pair in expander.expand(chain):
                for question, answer in pair.turns:
                    texts += [question, answer]
    return texts


def _single_token_words(tokenizer: Tokenizer, words: Iterable[str]) -> Tokenizer:
    """Append merges (lowest priority, so nothing else changes) until each word encodes as one token."""
    data = json.loads(tokenizer.to_str())
    vocab, merges = data["model"]["vocab"], data["model"]["merges"]
    for word in words:
        pieces = tokenizer.encode(word, add_special_tokens=False).tokens
        while len(pieces) > 1:
            merged = pieces[0] + pieces[1]
            merges.append([pieces[0], pieces[1]])
            vocab.setdefault(merged, max(vocab.values()) + 1)
            pieces = [merged, *pieces[2:]]
            logger.debug("added merge for %r: %s", word, merged)
    return Tokenizer.from_str(json.dumps(data))


def train_bpe(
    texts: list[str], vocab_size: int, special_tokens: Iterable[str], single_token_words: Iterable[str]
) -> Tokenizer:
    """A byte-level BPE (no prefix space) trained on ``texts``, each of ``single_token_words`` one token.

    ``special_tokens`` take the first ids, in order, and are never split.
    """
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return _single_token_words(bpe, single_token_words)


def build_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``corpus`` (default: :func:`builtin_corpus`) with the chat special tokens.

    ``vocab_size`` is the BPE target; the answer-word merges may add a few tokens on top. No BOS is added on
    encode: the chat template writes it, and a second one would shift every position.
    """
    texts = list(builtin_corpus() if corpus is None else corpus)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_bpe(texts, vocab_size, SPECIAL_TOKENS, ANSWER_WORDS),
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens={"image_token": IMAGE},
        model_max_length=2048,
        chat_template=chat_template(),
    )
    tokenizer.add_special_tokens({"extra_special_tokens": list(ROLE_TOKENS)}, replace_extra_special_tokens=False)
    return tokenizer


def build_processor(tokenizer: PreTrainedTokenizerFast, vision: str = "clip") -> LlavaProcessor:
    """A ``LlavaProcessor`` whose ``<image>`` expansion matches the model's feature count (16 per image).

    The PIL CLIP image processor (resize, centre crop, normalise) serves every tower: it needs no torchvision.
    """
    tower = VISION_TOWERS[vision]
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy=tower.select_strategy,
        num_additional_image_tokens=tower.extra_tokens,
        chat_template=chat_template(),
        image_token=IMAGE,
    )


def tiny_vision_kwargs(hidden_size: int, image_size: int, patch_size: int) -> dict:
    """A two-layer vision tower of ``hidden_size``: the shape every tiny model here shares."""
    return {
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": image_size,
        "patch_size": patch_size,
    }


def tiny_text_config(tokenizer: PreTrainedTokenizerFast, hidden_size: int = 64) -> LlamaConfig:
    """A two-layer Llama with tied embeddings over ``tokenizer``'s vocabulary and special tokens."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )


def tiny_llava_config(tokenizer: PreTrainedTokenizerFast, hidden_size: int = 64, vision: str = "clip") -> LlavaConfig:
    """Two vision layers, a two-layer projector and two Llama layers; embeddings tied to keep the count small."""
    tower = VISION_TOWERS[vision]
    vision_config = tower.config_class(
        **tiny_vision_kwargs(hidden_size, IMAGE_SIZE, PATCH_SIZE), **tower.config_kwargs
    )
    text = tiny_text_config(tokenizer, hidden_size)
    return LlavaConfig(
        vision_config=vision_config,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_select_strategy=tower.select_strategy,
        vision_feature_layer=-1,  # the last layer, so that every layer of the tiny tower is trained
        tie_word_embeddings=True,
    )


def build_tiny_llava(
    output_dir: str | Path,
    *,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    vision: str = "clip",
    seed: int = 0,
) -> Path:
    """Write a tiny LLaVA checkpoint (safetensors) with its processor and chat template; return the folder.

    ``vision`` names a :data:`VISION_TOWERS` entry. Deterministic: the same arguments give identical tokenizer
    and weights. The global torch RNG is left as it was. transformers 5 writes safetensors only.
    """
    if vision not in VISION_TOWERS:
        raise ValueError(f"unknown vision tower {vision!r}; one of {', '.join(VISION_TOWERS)}")
    output_dir = Path(output_dir)
    tokenizer = build_tokenizer(corpus, vocab_size)
    processor = build_processor(tokenizer, vision)
    config = tiny_llava_config(tokenizer, hidden_size, vision)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, attn_implementation="sdpa")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    params = sum(p.numel() for p in model.parameters())
    logger.info("tiny LLaVA (%s): %d parameters, vocabulary %d, in %s", vision, params, len(tokenizer), output_dir)
    return output_dir
