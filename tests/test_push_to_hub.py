"""Publishing through a local Hub endpoint: one commit, revisions, clear errors, and the detector pulled back."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from modeling.detector import FakeScopeDetector
from modeling.hub.export import ExportError, export
from modeling.scoring.split_images import split_images


@pytest.fixture(scope="module")
def images(sample_data):
    return [item.path for item in split_images(sample_data, "test")[:4]]


def repo_files(hub, repo_id: str, revision: str | None = None, repo_type: str = "model") -> dict[str, str]:
    files = hub.api.list_repo_tree(repo_id, revision=revision, repo_type=repo_type, recursive=True)
    return {f.path: getattr(f, "blob_id", None) for f in files if hasattr(f, "blob_id")}


def test_push_then_pull_the_detector_back_bit_identical(hub_endpoint, calibrated, evaluated, images):
    hub = hub_endpoint
    model, _ = calibrated
    repo_id = f"{hub.user}/fakescope-tiny"
    commits_before = hub.calls["commit"]
    export(model, repo_id=repo_id, eval_dir=evaluated[0].output_dir, token=hub.token)
    assert hub.calls["commit"] == commits_before + 1  # everything in one commit
    files = repo_files(hub, repo_id)
    for name in (
        "README.md",
        "model.safetensors",
        "calibration/model.safetensors",
        "eval/metrics.json",
        "eval/roc.png",
    ):
        assert name in files, name
    info = hub.api.model_info(repo_id, files_metadata=True)
    lfs = {s.rfilename for s in info.siblings if s.lfs is not None}
    assert {"model.safetensors", "calibration/model.safetensors"} <= lfs

    local = FakeScopeDetector.from_pretrained(model)(images, explain=False)
    pulled = FakeScopeDetector.from_pretrained(repo_id)(images, explain=False)
    assert [r["p_fake"] for r in pulled] == [r["p_fake"] for r in local]
    assert [r["p_fake_raw"] for r in pulled] == [r["p_fake_raw"] for r in local]
    assert all(r["calibrated"] for r in pulled)

    from transformers import AutoModelForImageTextToText, AutoProcessor

    assert type(AutoModelForImageTextToText.from_pretrained(repo_id, trust_remote_code=False)).__name__ == (
        "LlavaForConditionalGeneration"
    )
    assert AutoProcessor.from_pretrained(repo_id, trust_remote_code=False).chat_template


def test_push_to_a_branch(hub_endpoint, calibrated, images):
    hub = hub_endpoint
    model, _ = calibrated
    repo_id = f"{hub.user}/branched"
    export(model, repo_id=repo_id, revision="v1", token=hub.token)
    assert "model.safetensors" in repo_files(hub, repo_id, revision="v1")
    assert "model.safetensors" not in repo_files(hub, repo_id)  # main is untouched
    detector = FakeScopeDetector.from_pretrained(repo_id, revision="v1")
    assert detector(images[0], explain=False)["calibrated"] is True


def test_errors_users_hit(hub_endpoint, calibrated, tmp_path):
    hub = hub_endpoint
    model = tmp_path / "model"
    shutil.copytree(calibrated[0], model)
    repo_id = f"{hub.user}/errors"
    with pytest.raises(ExportError, match="no valid Hugging Face token"):
        export(model, repo_id=repo_id)
    export(model, repo_id=repo_id, token=hub.token)
    with pytest.raises(ExportError, match="already exists; pass --exist_ok"):
        export(model, repo_id=repo_id, token=hub.token)
    sha = hub.api.model_info(repo_id).sha
    export(model, repo_id=repo_id, token=hub.token, exist_ok=True)
    assert hub.api.model_info(repo_id).sha == sha  # the same export again: no empty commit
    config = model / "detector_config.json"
    config.write_text(config.read_text().replace('"threshold": 0.5', '"threshold": 0.6'))
    export(model, repo_id=repo_id, token=hub.token, exist_ok=True, commit_message="threshold 0.6")
    assert hub.api.model_info(repo_id).sha != sha
    assert FakeScopeDetector.from_pretrained(repo_id).config.threshold == 0.6


@pytest.mark.parametrize(("route", "status"), [("lfs_upload", 403), ("commit", 500)])
def test_a_failure_mid_upload_publishes_nothing(hub_endpoint, calibrated, tmp_path, route, status):
    hub = hub_endpoint
    model = tmp_path / "model"
    shutil.copytree(calibrated[0], model)
    repo_id = f"{hub.user}/half"
    hub.api.create_repo(repo_id)
    before_sha, before_files = hub.api.model_info(repo_id).sha, repo_files(hub, repo_id)
    hub.fail(route, nth=1 if route == "commit" else 2, times=None, status=status)
    with pytest.raises(ExportError, match="nothing was published"):
        export(model, repo_id=repo_id, token=hub.token, exist_ok=True)
    assert hub.api.model_info(repo_id).sha == before_sha
    assert repo_files(hub, repo_id) == before_files
    hub.clear_failures()
    export(model, repo_id=repo_id, token=hub.token, exist_ok=True)  # the same command again completes it
    assert "model.safetensors" in repo_files(hub, repo_id)


def test_push_to_hub_script_pushes_model_and_dataset(hub_endpoint, calibrated, evaluated, sample_data, tmp_path):
    hub = hub_endpoint
    model, _ = calibrated
    argv = [
        sys.executable,
        "scripts/push_to_hub.py",
        "--model",
        str(model),
        "--eval_dir",
        evaluated[0].output_dir,
        "--repo_id",
        f"{hub.user}/scripted",
        "--dataset_dir",
        str(sample_data),
        "--dataset_repo_id",
        f"{hub.user}/fakeinstruct-sample",
        "--output_dir",
        str(tmp_path / "publish"),
    ]
    result = subprocess.run(argv, env=hub.env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HTTP Request" not in result.stderr and "exported to" in result.stderr  # our lines, not the client's
    dataset = repo_files(hub, f"{hub.user}/fakeinstruct-sample", repo_type="dataset")
    assert "README.md" in dataset and any(p.endswith(".parquet") for p in dataset)
    text = (tmp_path / "publish" / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n", 2)[1])
    assert meta["datasets"] == [f"{hub.user}/fakeinstruct-sample"]
    assert repo_files(hub, f"{hub.user}/scripted")["README.md"] is not None

    no_token = subprocess.run(argv, env=hub.env(token=False), capture_output=True, text=True, timeout=300)
    assert no_token.returncode != 0 and "no valid Hugging Face token" in no_token.stderr
