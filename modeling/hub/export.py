"""Export a calibrated checkpoint: one folder with model, processor, calibration head, metrics and model card,
written locally (atomically) or pushed to the Hub in one commit.

Nothing is half-published: the folder is staged completely first; locally it replaces the previous export by
renames (:func:`fakeinstruct.files.atomic_dir`: the old folder or the new one, never a mix); on the Hub it goes
up as a single commit, which the Hub applies whole or not at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

from fakeinstruct.files import atomic_dir
from modeling.safe_loading import PICKLE_SUFFIXES, require_safetensors

logger = logging.getLogger(__name__)
MODEL_SUFFIXES = (".json", ".safetensors", ".jinja", ".txt", ".model")
# What the training run and the calibration stage leave beside the weights: the record of a run, not part of the
# model a user loads. Published under logs/, out of the way.
LOG_FILES = (
    "trainer_state.json",
    "train_results.json",
    "eval_results.json",
    "all_results.json",
    "sft_config.json",
    "calibration_report.json",
)
LOGS_DIR = "logs"
# The calibration head's files: its weights and config (the mixin's placeholder README is not one of them).
CALIBRATION_FILES = ("config.json", "model.safetensors")
EVAL_FILES = ("metrics.json", "results.md", "roc.png", "reliability_diagram.png")
METRICS_FILE = "metrics.json"
CALIBRATION = "calibration"


class ExportError(RuntimeError):
    """Publishing failed; the message says why and what was (not) published."""


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is in ``folder``: not a symlink, or one that resolves inside it. Only regular files are
    exported (a FIFO or device is not ``is_file()``), and a link out of the folder would publish what it points at."""
    return not path.is_symlink() or path.resolve().is_relative_to(folder.resolve())


def stage(
    model_dir: str | Path,
    staging: Path,
    *,
    eval_dir: str | Path | None = None,
    card_kwargs: dict | None = None,
    app: bool = False,
) -> Path:
    """Fill ``staging`` with everything a user needs to load and trust the detector (and, with ``app``, to try it:
    app.py, requirements.txt and src/, :func:`modeling.hub.space.write_app`)."""
    from modeling.hub.model_card import render_card

    model_dir = Path(model_dir)
    require_safetensors(model_dir)
    skipped, leaving = [], []
    for path in sorted(model_dir.iterdir()):
        if not _inside(path, model_dir):
            leaving.append(path.name)
        elif path.is_file() and path.name in LOG_FILES:
            (staging / LOGS_DIR).mkdir(exist_ok=True)
            shutil.copy2(path, staging / LOGS_DIR / path.name)
        elif path.is_file() and path.suffix in MODEL_SUFFIXES:
            shutil.copy2(path, staging / path.name)
        elif path.name == CALIBRATION and path.is_dir():
            (staging / CALIBRATION).mkdir()
            for item in sorted(path.iterdir()):
                name = f"{CALIBRATION}/{item.name}"
                if not _inside(item, model_dir):
                    leaving.append(name)
                elif item.is_file() and item.name in CALIBRATION_FILES:
                    shutil.copy2(item, staging / name)
                else:
                    skipped.append(name)
        else:
            skipped.append(path.name)
    pickles = [name for name in skipped if Path(name).suffix in PICKLE_SUFFIXES]
    if skipped:
        logger.info("not exported from %s: %s%s", model_dir, ", ".join(skipped), " (pickles)" if pickles else "")
    if leaving:
        logger.warning("not exported from %s: %s (symlinks to outside the folder)", model_dir, ", ".join(leaving))
    metrics = results = None
    if eval_dir is not None:
        eval_dir = Path(eval_dir)
        metrics_path = eval_dir / METRICS_FILE
        if not _inside(metrics_path, eval_dir):
            raise ExportError(
                f"{metrics_path} is a symlink to outside {eval_dir}: refusing to publish what it points at"
            )
        if not metrics_path.is_file():
            raise ExportError(
                f"{eval_dir} has no {METRICS_FILE}: run scripts/evaluate.py first, or leave out eval_dir"
            )
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        (staging / "eval").mkdir()
        for name in EVAL_FILES:
            if (eval_dir / name).is_file() and _inside(eval_dir / name, eval_dir):
                shutil.copy2(eval_dir / name, staging / "eval" / name)
        results = (
            (eval_dir / "results.md").read_text(encoding="utf-8") if (eval_dir / "results.md").is_file() else None
        )
    detector = (
        json.loads((model_dir / "detector_config.json").read_text())
        if (model_dir / "detector_config.json").is_file()
        else {}
    )
    question = detector.get("detection", {})
    card = render_card(
        model_dir,
        metrics=metrics,
        results_table=results,
        has_plots=(staging / "eval" / "roc.png").is_file(),
        question=question.get("question"),
        positive_word=question.get("positive"),
        negative_word=question.get("negative"),
        **(card_kwargs or {}),
    )
    card.save(staging / "README.md")
    if app:
        from modeling.hub.space import write_app

        write_app(staging)
    return staging


def _api(token: str | None):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    api = HfApi(token=token)
    try:
        api.whoami()
    except (LocalTokenNotFoundError, HfHubHTTPError) as err:
        raise ExportError(
            f"no valid Hugging Face token ({type(err).__name__}): log in with `hf auth login`, set HF_TOKEN or pass "
            "--token; or write the folder locally with --output_dir"
        ) from err
    return api


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    revision: str | None = None,
    token: str | None = None,
    private: bool = False,
    exist_ok: bool = False,
    commit_message: str = "Upload FakeScope-Kit detector",
) -> str:
    """Upload ``folder`` to ``repo_id`` (optionally a branch) in one commit; return the commit URL."""
    from huggingface_hub.errors import HfHubHTTPError

    api = _api(token)
    try:
        space = {"space_sdk": "gradio"} if repo_type == "space" else {}
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=exist_ok, **space)
    except HfHubHTTPError as err:
        if err.response is not None and err.response.status_code == 409:
            raise ExportError(
                f"{repo_type} repo {repo_id} already exists; pass --exist_ok to add a commit to it"
            ) from err
        raise ExportError(f"cannot create {repo_type} repo {repo_id}: {err}") from err
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
    try:
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type=repo_type,
            revision=revision,
            commit_message=commit_message,
        )
    except Exception as err:  # HTTP errors, dropped connections, and upload errors the client wraps in RuntimeError
        raise ExportError(
            f"upload to {repo_id} failed ({type(err).__name__}: {err}); nothing was published, the Hub applies a "
            "commit whole or not at all: run the same command again"
        ) from err
    logger.info("pushed %s to %s%s: %s", folder, repo_id, f"@{revision}" if revision else "", info.commit_url)
    return info.commit_url


def export(
    model_dir: str | Path,
    *,
    output_dir: str | Path | None = None,
    repo_id: str | None = None,
    eval_dir: str | Path | None = None,
    card_kwargs: dict | None = None,
    app: bool = False,
    **push_kwargs,
) -> str:
    """Stage the export, then write it to ``output_dir`` and/or push it to ``repo_id``; return where it went."""
    if output_dir is None and repo_id is None:
        raise ExportError("nothing to do: give output_dir (a local folder), repo_id (the Hub), or both")
    card_kwargs = {"repo_id": repo_id, **(card_kwargs or {})}
    where = []
    with contextlib.ExitStack() as stack:
        if output_dir is not None:
            staging = stack.enter_context(atomic_dir(output_dir))  # replaces output_dir when the block succeeds
        else:
            staging = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fakescope-export-")))
        stage(model_dir, staging, eval_dir=eval_dir, card_kwargs=card_kwargs, app=app)
        if repo_id is not None:
            where.append(push_folder(staging, repo_id, **push_kwargs))
    if output_dir is not None:
        where.append(str(output_dir))
    return ", ".join(where)


def push_space(
    space_repo_id: str, model: str, *, model_revision: str | None = None, license: str = "apache-2.0", **push_kwargs
) -> str:
    """Push a Gradio Space running the app over the model repo ``model`` (:func:`modeling.hub.space.stage_space`) in
    one commit; ``push_kwargs`` go to :func:`push_folder`. Returns the commit URL."""
    from modeling.hub.space import stage_space

    push_kwargs.setdefault("commit_message", "Upload FakeScope-Kit detector app")
    with tempfile.TemporaryDirectory(prefix="fakescope-space-") as tmp:
        stage_space(tmp, model, model_revision=model_revision, license=license)
        return push_folder(Path(tmp), space_repo_id, repo_type="space", **push_kwargs)
