#!/usr/bin/env python
"""Build the tiny offline LLaVA checkpoint (model, processor, chat template) that the demo and the tests train.

Nothing is downloaded: the tokenizer is trained on FakeInstruct text (built in, or --corpus) and the weights are
random, seeded. Defaults are the builder's own (modeling.tiny.llava.build_tiny_llava).
"""

from __future__ import annotations

import argparse
import inspect
import logging
from pathlib import Path

from modeling.tiny.llava import VISION_TOWERS, build_tiny_llava

DEFAULTS = {name: p.default for name, p in inspect.signature(build_tiny_llava).parameters.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--output-dir", required=True, type=Path, help="folder to write the checkpoint to")
    parser.add_argument("--vision", choices=sorted(VISION_TOWERS), default=DEFAULTS["vision"], help="vision tower")
    parser.add_argument("--vocab-size", type=int, default=DEFAULTS["vocab_size"], help="BPE vocabulary target")
    parser.add_argument("--hidden-size", type=int, default=DEFAULTS["hidden_size"], help="width of both towers")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="weight initialisation seed")
    parser.add_argument("--corpus", type=Path, help="text file to train the tokenizer on, one text per line")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    corpus = args.corpus.read_text(encoding="utf-8").splitlines() if args.corpus else None
    build_tiny_llava(
        args.output_dir,
        corpus=corpus,
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        vision=args.vision,
        seed=args.seed,
    )


if __name__ == "__main__":
    main()
