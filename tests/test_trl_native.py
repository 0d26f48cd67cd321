"""FakeInstruct as the ecosystem's own tools take it: TRL's ``trl sft`` command on every form of the output, and a
published dataset that ``load_dataset(repo)``, ``trl sft`` and ``scripts/sft.py`` train on as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE

from fakeinstruct.generation import GenerateConfig, generate

TRL = str(Path(sys.executable).with_name("trl"))
STEPS = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--use_cpu", "--bf16", "false"]
STEPS += ["--report_to", "none", "--save_strategy", "no", "--dataloader_num_workers", "0"]


@pytest.fixture(scope="module")
def chains(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trl") / "chains.jsonl"
    path.write_text("\n".join((SAMPLE / "chains.jsonl").read_text().splitlines()[:12]) + "\n")
    return path


def folder(chains: Path, name: str, **kwargs) -> Path:
    out = chains.parent / name
    config = GenerateConfig(chains=str(chains), out=str(out), root=str(SAMPLE), progress=False, families=["detection"])
    for key, value in kwargs.items():
        setattr(config, key, value)
    return generate(config).out


def trl_sft(model: Path, dataset: str, out: Path, cwd: Path, *extra: str, env=None) -> None:
    argv = [TRL, "sft", "--model_name_or_path", str(model), "--dataset_name", dataset, "--output_dir", str(out)]
    result = subprocess.run(
        [*argv, *STEPS, *extra], cwd=cwd, env=env or os.environ.copy(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert (out / "model.safetensors").is_file()


def test_trl_sft_trains_on_the_path_form_from_its_folder(tiny_model, chains, tmp_path):
    data = folder(chains, "relative")
    trl_sft(tiny_model, str(data), tmp_path / "out", data, "--assistant_only_loss", "true")


def test_trl_sft_trains_on_the_embedded_form_from_anywhere(tiny_model, chains, tmp_path):
    data = folder(chains, "embedded", images="embed")
    trl_sft(tiny_model, str(data), tmp_path / "out", tmp_path, "--assistant_only_loss", "true")


def test_trl_sft_trains_on_prompt_completion(tiny_model, chains, tmp_path):
    data = folder(chains, "prompt-completion", format="prompt-completion")
    trl_sft(tiny_model, str(data), tmp_path / "out", data)


def test_published_dataset_loads_with_images_and_trains(hub_endpoint, tiny_model, chains, tmp_path):
    """The path form, published: load_dataset(repo) gives PIL images, and trl sft and scripts/sft.py train on it."""
    import datasets
    from PIL import Image

    from fakeinstruct.publishing import stage_dataset
    from modeling.hub.export import push_folder

    hub = hub_endpoint
    repo_id = f"{hub.user}/fakeinstruct-published"
    staging = stage_dataset(folder(chains, "to-publish"), tmp_path / "staging", repo_id)
    push_folder(staging, repo_id, repo_type="dataset", token=hub.token)
    card = (staging / "README.md").read_text()
    assert f'load_dataset("{repo_id}")' in card and str(chains.parent) not in card  # the repo, never a local path

    loaded = datasets.load_dataset(repo_id)
    assert set(loaded) == {"train", "validation", "test"}
    assert isinstance(loaded["train"].features["images"].feature, datasets.Image)
    assert isinstance(loaded["train"][0]["images"][0], Image.Image)
    assert "image" not in loaded["train"].column_names

    env = hub.env()
    env.pop("HF_HUB_OFFLINE", None)
    trl_sft(tiny_model, repo_id, tmp_path / "trl", tmp_path, "--assistant_only_loss", "true", env=env)
    ours = [
        sys.executable,
        str(REPO / "scripts" / "sft.py"),
        "--config",
        str(REPO / "recipes/tiny-llava/sft/config_demo.yaml"),
    ]
    ours += [
        "--model_name_or_path",
        str(tiny_model),
        "--dataset_name",
        repo_id,
        "--output_dir",
        str(tmp_path / "ours"),
    ]
    ours += ["--max_steps", "2", "--do_eval", "false"]
    result = subprocess.run(ours, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert (tmp_path / "ours" / "model.safetensors").is_file()
