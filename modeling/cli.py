"""fakescope: score images with a fine-tuned, calibrated checkpoint.

`fakescope detect` takes image files, folders (recursive, filtered by --extensions), globs, image lists
(.csv/.jsonl with an image column, .txt with one path a line), `datasets` folders (save_to_disk) and Hub datasets
(hf://datasets/owner/name[@revision]) with an image column. Without --output it prints one verdict per image;
with --output it writes scores.parquet or scores.jsonl, one row per image (path, label, p_fake, p_fake_raw, logit,
calibrated, attributes and explanation when asked, error when unreadable), resumably: a killed run keeps what it
scored, and the same command skips it. Unreadable images are reported (stderr, or the row's error) and the others
still scored; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys

from fakeinstruct.arguments import HelpFormatter, both_spellings
from modeling.scoring.results import NO_TEXT

MODEL_ENV = "FAKESCOPE_MODEL"
EPILOG = """examples:
  fakescope detect photo.jpg other.png --model outputs/demo/sft --explain --attributes
  fakescope detect photos/ --model user/fakescope-llava --revision v1 --output scores.parquet
  fakescope detect "shots/**/*.png" list.csv --model outputs/sft --output scores.jsonl --num_workers 4
  fakescope detect hf://datasets/user/images --split test --image_column image --model outputs/sft --output s.parquet
  # several processes (one per GPU, or CPU processes): each scores every W-th image, the first merges in order
  accelerate launch --multi_gpu --num_processes 2 -m modeling.cli detect photos/ --model outputs/sft \\
      --output scores.parquet
  torchrun --nproc_per_node 2 -m modeling.cli detect photos/ --model outputs/sft --output scores.parquet
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fakescope", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    detect = sub.add_parser(
        "detect",
        help="real/fake verdicts with calibrated probabilities",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    add = detect.add_argument
    add("inputs", nargs="+", metavar="INPUT", help="image files, folders, globs, lists or datasets (see above)")
    add("--model", default=os.environ.get(MODEL_ENV), help=f"checkpoint folder or Hub repo id (default: ${MODEL_ENV})")
    add("--revision", help="Hub branch, tag or commit (Hub repos only)")
    add(*both_spellings("--output"), help="write rows to this .parquet or .jsonl file (resumable) instead of stdout")
    add("--overwrite", action="store_true", help="replace an output written by another model or configuration")
    add("--json", action="store_true", help="without --output: one JSON object per image instead of a line")
    add("--explain", action="store_true", help="add a generated explanation")
    add("--attributes", action="store_true", help="add p(anomalous) per forgery attribute")
    add(*both_spellings("--batch_size"), type=int, default=16, help="images per forward pass")
    add(*both_spellings("--num_workers"), type=int, default=2, help="DataLoader processes that decode and resize")
    add("--device", help="torch device, e.g. cuda or cpu (default: where the model loads; one GPU per process)")
    add("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto", help="model weights dtype")
    add("--threads", type=int, help="torch threads per process on CPU (default: cores left after the workers, >= 1)")
    add(
        "--extensions",
        default="jpg,jpeg,png,webp,bmp,tif,tiff,gif",
        help="file suffixes taken from folders (comma-separated)",
    )
    add(*both_spellings("--no_recursive"), action="store_true", help="take only the top level of folders")
    add(*both_spellings("--image_column"), help="image column of a dataset, or path column of a .csv/.jsonl list")
    add("--split", help="dataset split (default: every split)")
    add(*both_spellings("--save_every"), type=int, default=1024, help="rows per part file written (also every 30 s)")
    add(*both_spellings("--no_progress"), action="store_true", help="no progress bar")
    add("-v", "--verbose", action="store_true", help="log what happens (library chatter included)")
    return parser


def _line(result: dict) -> str:
    calibrated = "" if result["calibrated"] else " (uncalibrated)"
    text = f"{result['image']}: {result['label']}  p_fake={result['p_fake']:.4f}{calibrated}  raw={result['p_fake_raw']:.4f}"
    if "attributes" in result:
        top = sorted(result["attributes"].items(), key=lambda kv: -kv[1])[:3]
        text += "\n  most anomalous: " + ", ".join(f"{name} {p:.2f}" for name, p in top)
    if "explanation" in result:
        text += "\n  " + (result["explanation"] or NO_TEXT).replace("\n", "\n  ")
    return text


def _fail(message: str) -> int:
    print(f"fakescope detect: {message}", file=sys.stderr)
    return 2


def detect(args) -> int:
    if not args.model:
        return _fail(f"--model (or ${MODEL_ENV}) is required")
    for name in ("batch_size", "save_every"):
        if getattr(args, name) < 1:
            return _fail(f"--{name} must be at least 1")
    if args.num_workers < 0:
        return _fail("--num_workers must be 0 or more")
    import torch

    from modeling.detector import FakeScopeDetector
    from modeling.scoring.collection import CollectionError, collect
    from modeling.scoring.pipeline import Processes, detect_collection
    from modeling.scoring.results import ResultsError, output_format

    if args.output is not None:
        try:
            output_format(args.output)
        except ResultsError as err:
            return _fail(str(err))
    processes = Processes.from_environment(args.device)
    if processes.world > 1 and args.output is None:
        return _fail(f"{processes.world} processes need --output to merge into")
    try:
        collection = collect(
            args.inputs,
            extensions=tuple(e.strip() for e in args.extensions.split(",") if e.strip()),
            recursive=not args.no_recursive,
            image_column=args.image_column,
            split=args.split,
        )
    except (CollectionError, OSError) as err:
        return _fail(str(err))
    dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
    try:
        detector = FakeScopeDetector.from_pretrained(
            args.model, revision=args.revision, device=processes.device, dtype=dtype, batch_size=args.batch_size
        )
    except (OSError, ValueError) as err:
        return _fail(f"cannot load {args.model}: {err}")
    batches = math.ceil(len(collection) / (args.batch_size * processes.world)) if len(collection) else 0
    failed: list[dict] = []

    def show(rows: list[dict]) -> None:
        for row in rows:
            if row.get("error") is not None:
                failed.append(row)
                print(f"error: {row['path']}: {row['error']}", file=sys.stderr)
                continue
            if args.output is not None:
                continue
            result = {"image": row["path"], **{k: v for k, v in row.items() if k not in ("path", "error")}}
            print(json.dumps(result, ensure_ascii=False, allow_nan=False) if args.json else _line(result), flush=True)

    try:
        summary = detect_collection(
            detector,
            collection,
            output=args.output,
            on_rows=show,
            attributes=args.attributes,
            explain=args.explain,
            num_workers=min(args.num_workers, batches),
            save_every=args.save_every,
            overwrite=args.overwrite,
            progress=not args.no_progress and args.output is not None,
            processes=processes,
            threads=args.threads,
        )
    except ResultsError as err:
        return _fail(str(err))
    except ValueError as err:  # the model or its chat template cannot score (non-finite scores, template over budget)
        return _fail(f"cannot score with {args.model}: {err}")
    if failed:
        print(f"fakescope detect: {len(failed)} of {len(collection)} image(s) could not be read", file=sys.stderr)
    if args.output is not None and processes.rank == 0:
        share = "" if processes.world == 1 else f" (process 0 of {processes.world})"
        print(
            f"fakescope detect: {summary.scored} scored, {summary.skipped} already in {args.output}, "
            f"{summary.failed} unreadable{share}, {summary.images_per_s:.1f} images/s; "
            f"{args.output}: {summary.rows} rows",
            file=sys.stderr,
        )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        for name in ("httpx", "httpcore", "huggingface_hub", "datasets", "urllib3", "accelerate"):
            logging.getLogger(name).setLevel(logging.WARNING)
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    return detect(args)


if __name__ == "__main__":
    sys.exit(main())
