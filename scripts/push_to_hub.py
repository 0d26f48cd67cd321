#!/usr/bin/env python
"""Publish a calibrated checkpoint: model, processor, calibration head, metrics and a rendered model card.

    # a local folder, ready to upload (what `make demo` does)
    python scripts/push_to_hub.py --model outputs/demo/sft --eval_dir outputs/demo/eval --output_dir outputs/demo/publish
    # with a Gradio app: then `cd outputs/demo/publish && python app.py` (or --model DIR)
    python scripts/push_to_hub.py --model outputs/demo/sft --eval_dir outputs/demo/eval --output_dir outputs/demo/publish --app
    # the Hub, one commit, optionally on a branch; plus the FakeInstruct dataset it was trained on
    python scripts/push_to_hub.py --model outputs/sft --eval_dir outputs/eval --repo_id you/fakescope-llava \\
        --revision v1 --dataset_dir outputs/fakeinstruct --dataset_repo_id you/fakeinstruct
    # and a Space running the app over that model repo
    python scripts/push_to_hub.py --model outputs/sft --eval_dir outputs/eval --repo_id you/fakescope-llava \
        --space_repo_id you/fakescope-demo

The card is MODEL_CARD.md rendered with huggingface_hub's ModelCard: metadata and a model-index built from
metrics.json, the results tables, the training procedure from sft_config.json and the calibration report.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fakeinstruct.errors import FakeInstructError
from fakeinstruct.logs import setup_logging
from fakeinstruct.publishing import stage_dataset
from modeling.hub.export import ExportError, export, push_folder, push_space
from modeling.recipes import recipe_parser


@dataclass
class PushArguments:
    model: str = field(metadata={"help": "Calibrated checkpoint folder (scripts/sft.py + scripts/calibrate.py)."})
    eval_dir: str | None = field(default=None, metadata={"help": "scripts/evaluate.py output (metrics.json ...)."})
    output_dir: str | None = field(default=None, metadata={"help": "Write the publishable folder here."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub model repo to push to (user/name)."})
    revision: str | None = field(default=None, metadata={"help": "Branch to push to (created when missing)."})
    private: bool = field(default=False, metadata={"help": "Create the repo private."})
    exist_ok: bool = field(default=False, metadata={"help": "Add a commit to an existing repo instead of failing."})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: HF_TOKEN or the login cache)."})
    commit_message: str = field(default="Upload FakeScope-Kit detector", metadata={"help": "Commit message."})
    license: str = field(default="apache-2.0", metadata={"help": "License in the card metadata."})
    dataset_dir: str | None = field(default=None, metadata={"help": "FakeInstruct folder the model was trained on."})
    dataset_repo_id: str | None = field(
        default=None,
        metadata={"help": "Also push dataset_dir to this dataset repo (image bytes embedded, so it trains as it is)."},
    )
    verbose: bool = field(default=False, metadata={"help": "Also log the HTTP requests and library debug lines."})
    app: bool = field(default=False, metadata={"help": "Add app.py + requirements.txt (a Gradio demo) to the export."})
    space_repo_id: str | None = field(default=None, metadata={"help": "Also push a Gradio Space over repo_id here."})


def main(argv: list[str] | None = None) -> None:
    (args,) = recipe_parser((PushArguments,), __doc__).parse_args_and_config(argv)
    setup_logging(args.verbose)
    hub = {"revision": args.revision, "token": args.token, "private": args.private, "exist_ok": args.exist_ok}
    try:
        if args.dataset_repo_id:
            if not args.dataset_dir:
                raise ExportError("--dataset_repo_id needs --dataset_dir (the FakeInstruct folder to push)")
            with tempfile.TemporaryDirectory(prefix="fakeinstruct-publish-") as staging:
                stage_dataset(args.dataset_dir, staging, args.dataset_repo_id)
                push_folder(
                    Path(staging),
                    args.dataset_repo_id,
                    repo_type="dataset",
                    commit_message="Upload FakeInstruct",
                    **hub,
                )
        where = export(
            args.model,
            output_dir=args.output_dir,
            repo_id=args.repo_id,
            eval_dir=args.eval_dir,
            card_kwargs={"dataset_id": args.dataset_repo_id, "dataset_dir": args.dataset_dir, "license": args.license},
            commit_message=args.commit_message,
            app=args.app,
            **(hub if args.repo_id else {}),
        )
        if args.space_repo_id:
            if not args.repo_id:
                raise ExportError("--space_repo_id needs --repo_id (the model repo the Space loads)")
            space_hub = {k: v for k, v in hub.items() if k != "revision"}
            where += ", " + push_space(
                args.space_repo_id, args.repo_id, model_revision=args.revision, license=args.license, **space_hub
            )
    except (ExportError, FakeInstructError, OSError, ValueError) as err:
        sys.exit(f"push_to_hub: {err}")
    logging.getLogger("scripts.push_to_hub").info("exported to %s", where)


if __name__ == "__main__":
    main()
