"""Local export: a complete publishable folder with a model card carrying the metrics, written all or nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modeling.detector import FakeScopeDetector
from modeling.hub import export as export_module
from modeling.hub.export import ExportError, export
from modeling.safe_loading import UnsafeCheckpointError
from modeling.scoring.split_images import split_images


def front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture
def checkpoint(calibrated, tmp_path) -> Path:
    """A copy of the calibrated model with a pickle that training leaves behind."""
    model = tmp_path / "model"
    shutil.copytree(calibrated[0], model)
    (model / "training_args.bin").write_bytes(b"\x80\x04pickle")
    for name in ("trainer_state.json", "train_results.json", "all_results.json"):  # what a training run leaves
        (model / name).write_text('{"epoch": 1.0}')
    return model


def test_export_folder_has_everything_and_a_card_with_the_metrics(checkpoint, evaluated, sample_data, tmp_path):
    args, metrics = evaluated
    out = tmp_path / "publish"
    export(checkpoint, output_dir=out, eval_dir=args.output_dir, card_kwargs={"dataset_dir": str(sample_data)})
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for required in (
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "processor_config.json",
        "chat_template.jinja",
        "detector_config.json",
        "calibration/config.json",
        "calibration/model.safetensors",
        "eval/metrics.json",
        "eval/results.md",
        "eval/roc.png",
        "eval/reliability_diagram.png",
    ):
        assert required in names, required
    assert "training_args.bin" not in names
    # what a user loads, and the run's record under logs/: nothing of the run's scratch at the root
    for scratch in ("trainer_state.json", "train_results.json", "all_results.json", "calibration_report.json"):
        assert scratch not in names and f"logs/{scratch}" in names, scratch
    assert "reliability_diagram.png" not in names  # one diagram, under eval/, referenced once by the card
    assert {n for n in names if n.startswith("calibration/")} == {
        "calibration/config.json",
        "calibration/model.safetensors",
    }
    meta = front_matter(out / "README.md")
    assert meta["pipeline_tag"] == "image-text-to-text" and meta["license"] == "apache-2.0"
    assert meta["library_name"] == "transformers"
    results = meta["model-index"][0]["results"]
    detection = next(r for r in results if r["task"]["type"] == "image-classification")
    auc = next(m["value"] for m in detection["metrics"] if m["type"] == "roc_auc")
    assert auc == round(metrics["detector"]["calibrated"]["auc"], 4)
    assert detection["dataset"]["split"] == "test"
    card = (out / "README.md").read_text()
    assert "| model (calibrated) |" in card and "| baseline: spectrum |" in card and "platt scaling head" in card
    assert "baseline: AUC difference" in card  # the card says whether the model beats each baseline
    assert "instruction pairs expanded from FakeChain records" in card  # training data from stats.json
    assert json.loads((out / "eval" / "metrics.json").read_text()) == json.loads(
        Path(args.output_dir, "metrics.json").read_text()
    )
    assert card.count("eval/reliability_diagram.png") == 1 and "[More Information Needed]" not in card
    assert str(sample_data) not in card and str(tmp_path) not in card  # no path of the machine it was written on


def test_detector_from_the_export_gives_identical_scores(checkpoint, evaluated, sample_data, tmp_path):
    args, _ = evaluated
    out = tmp_path / "publish"
    export(checkpoint, output_dir=out, eval_dir=args.output_dir)
    images = [item.path for item in split_images(sample_data, "test")[:4]]
    before = FakeScopeDetector.from_pretrained(checkpoint)(images, explain=False)
    after = FakeScopeDetector.from_pretrained(out)(images, explain=False)
    assert [r["p_fake"] for r in after] == [r["p_fake"] for r in before]
    assert [r["p_fake_raw"] for r in after] == [r["p_fake_raw"] for r in before]


def test_plain_transformers_loads_the_export_without_remote_code(checkpoint, tmp_path):
    out = tmp_path / "publish"
    export(checkpoint, output_dir=out)
    code = (
        "import sys; from transformers import AutoModelForImageTextToText, AutoProcessor; "
        "m = AutoModelForImageTextToText.from_pretrained(sys.argv[1], trust_remote_code=False); "
        "p = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=False); "
        "print(type(m).__name__, type(p).__name__, p.chat_template is not None)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["LlavaForConditionalGeneration", "LlavaProcessor", "True"]


def test_an_interrupted_export_leaves_the_previous_folder(checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "publish"
    export(checkpoint, output_dir=out)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    original_copy = shutil.copy2
    copied = []

    def copy_then_die(src, dst, *a, **k):
        copied.append(src)
        if len(copied) == 5:
            raise KeyboardInterrupt  # killed half-way through staging
        return original_copy(src, dst, *a, **k)

    monkeypatch.setattr(export_module.shutil, "copy2", copy_then_die)
    with pytest.raises(KeyboardInterrupt):
        export(checkpoint, output_dir=out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_refusals(tmp_path):
    with pytest.raises(ExportError, match="nothing to do"):
        export(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(UnsafeCheckpointError):
        export(tmp_path, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_push_to_hub_script_help():
    result = subprocess.run(
        [sys.executable, "scripts/push_to_hub.py", "--help"], capture_output=True, text=True, check=True
    )
    assert "--repo_id" in result.stdout and "--output_dir" in result.stdout


def test_atomic_dir_repairs_a_crash_between_its_two_renames(tmp_path):
    from fakeinstruct.files import atomic_dir

    target = tmp_path / "export"
    with atomic_dir(target) as staging:
        (staging / "v").write_text("1")
    target.rename(tmp_path / ".export.old")  # killed after parking the old folder, before the new one moved in
    with pytest.raises(RuntimeError), atomic_dir(target) as staging:
        assert (target / "v").read_text() == "1"  # the parked folder is back before anything else happens
        (staging / "v").write_text("2")
        raise RuntimeError("failed while staging")
    assert (target / "v").read_text() == "1"
    with atomic_dir(target) as staging:
        (staging / "v").write_text("2")
    assert (target / "v").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_export_copies_regular_files_inside_the_folder_only_and_says_what_it_skipped(tmp_path, caplog):
    model, outside = tmp_path / "model", tmp_path / "outside"
    (model / "calibration").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "calibration" / "config.json").write_text('{"method": "platt", "fit_info": {}}')
    (model / "calibration" / "model.safetensors").write_bytes(b"head")
    (model / "notes.txt").symlink_to(outside / "secret.txt")  # would be copied, and uploaded
    (model / "calibration" / "extra.json").symlink_to(outside / "secret.txt")
    (model / "tokenizer.json").symlink_to(model / "config.json")  # a link inside the folder is fine
    (model / "shared.model").symlink_to(outside)  # a folder outside
    out = tmp_path / "publish"
    export(model, output_dir=out)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == [
        "README.md",
        "calibration/config.json",
        "calibration/model.safetensors",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert not any(p.is_symlink() for p in out.rglob("*"))
    skipped = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert skipped == [
        f"not exported from {model}: calibration/extra.json, notes.txt, shared.model (symlinks to outside the folder)"
    ]


def test_a_calibration_folder_that_links_outside_is_not_exported(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text('{"method": "platt", "fit_info": {}}')
    (model / "calibration").symlink_to(elsewhere)
    out = tmp_path / "publish"
    export(model, output_dir=out)
    assert not (out / "calibration").exists()
