#!/usr/bin/env python
"""Merge a LoRA run of scripts/sft.py (adapter + trained projector) into a plain checkpoint with its processor.

    python scripts/merge_lora.py outputs/llava-1.5-7b-fakescope-lora --output-dir outputs/llava-1.5-7b-fakescope-merged

The base model is the one adapter_config.json names (override with --base-model), loaded unquantized in the
recipe's dtype (sft_config.json; override with --dtype). The output folder loads with
AutoModelForImageTextToText.from_pretrained(folder) and AutoProcessor.from_pretrained(folder): safetensors only,
no adapter files, no remote code (modeling.training.merge).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fakeinstruct.arguments import HelpFormatter, both_spellings
from fakeinstruct.logs import setup_logging
from modeling.training.merge import merge_lora

DTYPES = ("auto", "float32", "bfloat16", "float16")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        formatter_class=HelpFormatter,
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("adapter_dir", type=Path, help="output folder of a LoRA run of scripts/sft.py")
    parser.add_argument(
        *both_spellings("--output_dir"), type=Path, help="where to save the merged model (default: ADAPTER_DIR-merged)"
    )
    parser.add_argument(
        *both_spellings("--base_model"), help="base model id or folder (default: the one adapter_config.json names)"
    )
    parser.add_argument("--revision", help="revision of the base model (default: the recipe's)")
    parser.add_argument("--dtype", choices=DTYPES, help="dtype to merge and save in (default: the recipe's)")
    parser.add_argument(
        *both_spellings("--safe_merge"), action="store_true", help="check merged weights for NaNs (PEFT safe_merge)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    setup_logging()
    output_dir = args.output_dir or args.adapter_dir.with_name(args.adapter_dir.name + "-merged")
    merge_lora(
        args.adapter_dir,
        output_dir,
        base_model=args.base_model,
        dtype=args.dtype,
        revision=args.revision,
        safe_merge=args.safe_merge,
        overwrite=args.overwrite,
    )
    print(output_dir)


if __name__ == "__main__":
    main()
