"""fakescope: score images with a fine-tuned, calibrated checkpoint.

    fakescope detect photo.jpg other.png --model outputs/demo/sft --explain --attributes
    fakescope detect *.png --model user/fakescope-llava --revision v1 --json

An unreadable image is reported on stderr as ``error: PATH: reason`` and the other images are still scored; the
exit code is then 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

MODEL_ENV = "FAKESCOPE_MODEL"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fakescope", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    detect = sub.add_parser("detect", help="real/fake verdicts with calibrated probabilities", description=__doc__)
    detect.add_argument("images", nargs="+", help="image files")
    detect.add_argument(
        "--model",
        default=os.environ.get(MODEL_ENV),
        help=f"checkpoint folder or Hub repo id (default: ${MODEL_ENV})",
    )
    detect.add_argument("--revision", help="Hub branch, tag or commit (Hub repos only)")
    detect.add_argument("--json", action="store_true", help="one JSON object per image instead of a table")
    detect.add_argument("--explain", action="store_true", help="add a generated explanation")
    detect.add_argument("--attributes", action="store_true", help="add p(anomalous) per forgery attribute")
    detect.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    detect.add_argument("--device", help="torch device, e.g. cuda or cpu (default: where the model loads)")
    detect.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    return parser


def _line(result: dict) -> str:
    calibrated = "" if result["calibrated"] else " (uncalibrated)"
    text = f"{result['image']}: {result['label']}  p_fake={result['p_fake']:.4f}{calibrated}  raw={result['p_fake_raw']:.4f}"
    if "attributes" in result:
        top = sorted(result["attributes"].items(), key=lambda kv: -kv[1])[:3]
        text += "\n  most anomalous: " + ", ".join(f"{name} {p:.2f}" for name, p in top)
    if "explanation" in result:
        text += "\n  " + result["explanation"].replace("\n", "\n  ")
    return text


def detect(args) -> int:
    if not args.model:
        print(f"fakescope detect: --model (or ${MODEL_ENV}) is required", file=sys.stderr)
        return 2
    if args.batch_size < 1:
        print("fakescope detect: --batch-size must be at least 1", file=sys.stderr)
        return 2
    from modeling.detector import FakeScopeDetector

    try:
        detector = FakeScopeDetector.from_pretrained(
            args.model, revision=args.revision, device=args.device, batch_size=args.batch_size
        )
    except (OSError, ValueError) as err:
        print(f"fakescope detect: cannot load {args.model}: {err}", file=sys.stderr)
        return 2
    try:
        results = detector(args.images, explain=args.explain, attributes=args.attributes, on_error="report")
    except ValueError as err:  # the model or its chat template cannot score (non-finite scores, template over budget)
        print(f"fakescope detect: cannot score with {args.model}: {err}", file=sys.stderr)
        return 2
    failed = 0
    for result in results:
        if "error" in result:
            failed += 1
            print(f"error: {result['image']}: {result['error']}", file=sys.stderr)
        elif args.json:
            print(json.dumps(result, ensure_ascii=False, allow_nan=False))  # NaN is not JSON
        else:
            print(_line(result))
    if failed:
        print(f"fakescope detect: {failed} of {len(results)} image(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    return detect(args)


if __name__ == "__main__":
    sys.exit(main())
