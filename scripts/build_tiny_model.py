#!/usr/bin/env python
"""Build a tiny offline checkpoint (model, processor, chat template) that the demo, the tests and the CPU recipes train.

    python scripts/build_tiny_model.py --output-dir outputs/demo/tiny-llava            # LLaVA (CLIP tower)
    python scripts/build_tiny_model.py --output-dir outputs/tiny-idefics3 --arch idefics3

Recipes then name the folder as their model_name_or_path. Nothing is downloaded: the tokenizer is trained on
FakeInstruct text (built in, or --corpus) and the weights are random, seeded. Defaults are the builders' own
(modeling.tiny.llava.build_tiny_llava, modeling.tiny.idefics3.build_tiny_idefics3).
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from fakeinstruct.arguments import HelpFormatter, both_spellings
from fakeinstruct.logs import setup_logging
from modeling.tiny.idefics3 import build_tiny_idefics3
from modeling.tiny.llava import VISION_TOWERS, build_tiny_llava

BUILDERS = {"llava": build_tiny_llava, "idefics3": build_tiny_idefics3}
DEFAULTS = {name: p.default for name, p in inspect.signature(build_tiny_llava).parameters.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        *both_spellings("--output_dir"), required=True, type=Path, help="folder to write the checkpoint to"
    )
    parser.add_argument("--arch", choices=sorted(BUILDERS), default="llava", help="model architecture")
    parser.add_argument("--vision", choices=sorted(VISION_TOWERS), help=f"LLaVA's vision tower ({DEFAULTS['vision']})")
    parser.add_argument(
        *both_spellings("--vocab_size"), type=int, default=DEFAULTS["vocab_size"], help="BPE vocabulary target"
    )
    parser.add_argument(
        *both_spellings("--hidden_size"), type=int, default=DEFAULTS["hidden_size"], help="width of both towers"
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="weight initialisation seed")
    parser.add_argument("--corpus", type=Path, help="text file to train the tokenizer on, one text per line")
    args = parser.parse_args(argv)
    if args.vision is not None and args.arch != "llava":
        parser.error(f"--vision is for --arch llava; {args.arch} has its own tower")
    setup_logging(fmt="%(message)s")
    corpus = args.corpus.read_text(encoding="utf-8").splitlines() if args.corpus else None
    options = {"vision": args.vision} if args.vision is not None else {}
    BUILDERS[args.arch](
        args.output_dir,
        corpus=corpus,
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        seed=args.seed,
        **options,
    )


if __name__ == "__main__":
    main()
