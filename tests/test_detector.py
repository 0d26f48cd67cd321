"""Calibration stage, detector and ``fakescope detect`` on the tiny model and FakeInstruct from the sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakeinstruct.errors import FakeChainError
from modeling.calibration import CalibrationHead
from modeling.calibration.fit import DIAGRAM_NAME, REPORT_NAME, CalibrateArguments, calibrate
from modeling.cli import main as fakescope
from modeling.detector import FakeScopeDetector
from modeling.detector_config import CONFIG_NAME
from modeling.safe_loading import UnsafeCheckpointError, require_safetensors
from modeling.scoring.cache import ResultCache
from modeling.scoring.probability import TokenProbabilityEstimator
from modeling.scoring.split_images import split_images


def sample_images(data: Path, n: int) -> list[Path]:
    return [item.path for item in split_images(data, "test")[:n]]


def test_split_images_lists_each_image_once_with_its_label(sample_data):
    items = split_images(sample_data, "test")
    assert len(items) == len({item.chain_id for item in items}) == 60
    assert sum(item.label for item in items) == 30
    assert all(item.path.is_file() for item in items)
    assert len({item.group for item in items}) == 6  # the authors, what intervals resample
    assert {item.generator for item in items if item.label == 0} == {"camera"}


def test_calibrate_with_the_fakescope_formula_keeps_it_for_detection(tiny_model, sample_data, tmp_path, caplog):
    """Also: loading a checkpoint without a head warns, except in calibration, which is about to fit one."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    with caplog.at_level("WARNING", logger="modeling.detector"):
        FakeScopeDetector.from_pretrained(model)
        assert "has no calibration head" in caplog.text
        caplog.clear()
        calibrate(
            CalibrateArguments(model=str(model), data=str(sample_data), batch_size=16, score_formula="fakescope")
        )
        assert "has no calibration head" not in caplog.text
    assert json.loads((model / CONFIG_NAME).read_text())["score_formula"] == "fakescope"
    assert FakeScopeDetector.from_pretrained(model).estimator.formula == "fakescope"


def test_calibrate_saves_head_prompts_report_and_diagram(calibrated):
    model, report = calibrated
    assert (model / "calibration" / "model.safetensors").is_file()
    assert (model / CONFIG_NAME).is_file()
    assert json.loads((model / REPORT_NAME).read_text()) == json.loads(json.dumps(report))
    with Image.open(model / DIAGRAM_NAME) as img:
        assert img.format == "PNG"
    assert report["before"]["n"] == report["after"]["n"] == 60
    assert report["calibration_split"]["name"] == "validation"
    # Platt scaling is monotone: the AUC stays, or flips when the fitted slope is negative
    before = report["before"]["auc"] if report["weight"] > 0 else 1 - report["before"]["auc"]
    assert report["after"]["auc"] == pytest.approx(before, abs=1e-12)


def test_calibrate_resumes_from_its_cache(calibrated, sample_data, monkeypatch):
    model, report = calibrated
    calls = []
    original = TokenProbabilityEstimator.score
    monkeypatch.setattr(
        TokenProbabilityEstimator, "score", lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    )
    again = calibrate(
        CalibrateArguments(
            model=str(model),
            data=str(sample_data),
            method="platt",
            batch_size=8,
            cache_dir=str(model.parent / "cache"),
        )
    )
    assert calls == []  # every score came from the cache
    assert again["before"] == report["before"]
    assert (again["weight"], again["bias"]) == (report["weight"], report["bias"])  # the shared head is unchanged


def test_calibrating_on_the_test_split_is_refused(calibrated, sample_data):
    model, _ = calibrated
    with pytest.raises(ValueError, match="must differ"):
        calibrate(CalibrateArguments(model=str(model), data=str(sample_data), calibration_split="test"))


def test_detector_scores_paths_and_pil_images_with_the_calibrated_head(calibrated, sample_data):
    model, _ = calibrated
    detector = FakeScopeDetector.from_pretrained(model, batch_size=2)
    head = CalibrationHead.from_checkpoint(model)
    paths = sample_images(sample_data, 3)
    results = detector(paths, explain=False)
    assert [r["image"] for r in results] == [str(p) for p in paths]
    for r in results:
        assert r["calibrated"] is True
        assert r["p_fake"] == pytest.approx(float(head.calibrate([r["logit"]])[0]), abs=1e-12)
        assert r["p_fake_raw"] == pytest.approx(1 / (1 + np.exp(-r["logit"])), abs=1e-12)
        assert r["label"] == ("fake" if r["p_fake"] >= 0.5 else "real")
    single = detector(Image.open(paths[0]), explain=False)
    assert isinstance(single, dict) and single["image"] is None
    assert single["p_fake"] == pytest.approx(results[0]["p_fake"], abs=1e-6)


def test_detector_explains_and_scores_every_attribute(calibrated, sample_data):
    from fakeinstruct.chain.taxonomy import load_taxonomy

    model, _ = calibrated
    detector = FakeScopeDetector.from_pretrained(model)
    detector.config.max_new_tokens = 8
    result = detector(sample_images(sample_data, 1)[0], explain=True, attributes=True)
    assert isinstance(result["explanation"], str)
    assert set(result["attributes"]) == set(load_taxonomy().names)
    assert all(0.0 < p < 1.0 for p in result["attributes"].values())


def test_unreadable_images_are_reported_and_the_others_scored(calibrated, sample_data, tmp_path):
    model, _ = calibrated
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    good = sample_images(sample_data, 1)[0]
    detector = FakeScopeDetector.from_pretrained(model)
    results = detector([bad, good], explain=False, on_error="report")
    assert "does not decode" in results[0]["error"] and "p_fake" not in results[0]
    assert results[1]["image"] == str(good) and "p_fake" in results[1]
    with pytest.raises(FakeChainError, match="does not decode"):
        detector([bad, good], explain=False)


def test_fakescope_detect_cli(calibrated, sample_data, tmp_path, capsys):
    model, _ = calibrated
    good = sample_images(sample_data, 2)
    missing = tmp_path / "missing.png"
    code = fakescope(["detect", str(good[0]), str(missing), str(good[1]), "--model", str(model), "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in lines] == [str(g) for g in good]
    assert f"error: {missing}:" in err and "1 of 3 image(s) could not be read" in err
    assert fakescope(["detect", str(good[0]), "--model", str(model)]) == 0
    assert "p_fake=" in capsys.readouterr().out
    assert fakescope(["detect", str(good[0]), "--model", str(tmp_path / "no-such-model")]) == 2
    with pytest.raises(SystemExit) as exit_info:
        fakescope(["detect", "--help"])
    assert exit_info.value.code == 0


def test_pickle_only_checkpoints_are_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(UnsafeCheckpointError, match=r"pickle format \(pytorch_model.bin\)"):
        require_safetensors(tmp_path)
    with pytest.raises(UnsafeCheckpointError):
        FakeScopeDetector.from_pretrained(tmp_path)
    # training and merging refuse it too
    from types import SimpleNamespace

    from modeling.training.sft import load_model

    model_args = SimpleNamespace(
        model_revision=None, dtype="float32", attn_implementation="sdpa", load_in_4bit=False, load_in_8bit=False
    )
    training_args = SimpleNamespace(trust_remote_code=False, model_init_kwargs=None, local_process_index=0)
    with pytest.raises(UnsafeCheckpointError):
        load_model(str(tmp_path), model_args, training_args)


def test_result_cache_skips_a_partial_line_and_restarts_for_another_model(tmp_path):
    path = tmp_path / "scores.jsonl"
    cache = ResultCache(path, {"weights": "a"}, key_field="id")
    cache.add([{"id": "x", "v": 1}, {"id": "y", "v": 2}])
    with open(path, "a") as f:
        f.write('{"id": "z", "v"')  # killed mid-write
    resumed = ResultCache(path, {"weights": "a"}, key_field="id")
    assert set(resumed.results) == {"x", "y"}
    resumed.add([{"id": "z", "v": 3}])
    assert set(ResultCache(path, {"weights": "a"}, key_field="id").results) == {"x", "y", "z"}
    assert ResultCache(path, {"weights": "b"}, key_field="id").results == {}


def test_benchmark_scoring_prints_its_json_line(tiny_model):
    import subprocess
    import sys

    argv = [sys.executable, "scripts/benchmark_scoring.py", "--model", str(tiny_model), "--images", "32"]
    argv += ["--batch-size", "8", "--repeats", "1", "--max-new-tokens", "4", "--explain-images", "8"]
    result = subprocess.run([*argv, "--num-workers", "1"], capture_output=True, text=True, check=True, timeout=300)
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["images"] == 32 and line["batch_size"] == 8 and line["explain_images"] == 8
    assert line["detect_images_per_s"] > 0 and line["forward_images_per_s"] > 0 and line["explain_images_per_s"] > 0
    assert line["ratio_to_forward"] > 0 and line["speedup_vs_explain"] > 0 and line["preprocessing"] == "split"
    assert set(line["batch_ms"]) == {"decode", "resize", "collate", "inputs", "forward", "rows"}


def _detector_config(**change) -> dict:
    from modeling.detector_config import default_config

    return {**default_config().to_dict(), **change}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"threshold": float("nan")}, "threshold must be a finite number between 0.0 and 1.0 (exclusive), not nan"),
        ({"threshold": 1.5}, "threshold must be a finite number between 0.0 and 1.0 (exclusive), not 1.5"),
        ({"threshold": "0.5"}, "threshold must be a number, not '0.5'"),
        ({"threshold": True}, "threshold must be a number, not True"),
        ({"max_new_tokens": 10**9}, "max_new_tokens must be between 1 and 4096, not 1000000000"),
        ({"score_formula": "sum"}, "score_formula must be one of logprob, fakescope, not 'sum'"),
        ({"max_new_tokens": 1.5}, "max_new_tokens must be a whole number, not 1.5"),
        ({"explanation": ["Why?"]}, "explanation must be a non-empty string"),
        ({"detection": {"question": "Real?", "positive": 1, "negative": "Real"}}, "detection.positive must be a"),
        (
            {"detection": {"question": "Real?", "positive": "Fake", "negative": "Fake"}},
            "detection: positive and negative are",
        ),
        ({"attributes": {"texture": "Natural?"}}, "attributes.texture must be an object with exactly question"),
        ({"detection": None}, "detection must be an object with exactly question, positive and negative"),
    ],
)
def test_a_broken_detector_config_is_refused_naming_its_file(tmp_path, change, message):
    from modeling.detector_config import DetectorConfig

    (tmp_path / CONFIG_NAME).write_text(json.dumps(_detector_config(**change)))
    with pytest.raises(ValueError) as info:
        DetectorConfig.load(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / CONFIG_NAME}: not a valid detector config: {message}")


def test_a_detector_config_that_is_not_json_is_refused_naming_its_file(tmp_path):
    from modeling.detector_config import DetectorConfig

    (tmp_path / CONFIG_NAME).write_text('{"threshold": 0.')
    with pytest.raises(ValueError, match=f"^{tmp_path / CONFIG_NAME}: not valid JSON"):
        DetectorConfig.load(tmp_path)
    (tmp_path / CONFIG_NAME).write_text("[]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        DetectorConfig.load(tmp_path)


@pytest.fixture
def tiny_copy(tiny_model, tmp_path) -> Path:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    return model


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("nan_head", "calibration/model.safetensors: weight is nan; a head holds finite numbers"),
        ("empty_head", "calibration/model.safetensors: weight, bias are missing"),
        (
            "nan_threshold",
            "detector_config.json: not a valid detector config: threshold must be a finite number between 0.0 and 1.0 "
            "(exclusive), not nan",
        ),
    ],
)
def test_fakescope_detect_refuses_a_broken_calibration_or_config_in_one_line(
    what, message, tiny_copy, tmp_path, capsys
):
    import torch
    from conftest import write_png
    from safetensors.torch import save_file

    if what.endswith("head"):
        (tiny_copy / "calibration").mkdir()
        (tiny_copy / "calibration" / "config.json").write_text('{"method": "platt", "fit_info": {}}')
        tensors = {"weight": torch.tensor([float("nan")], dtype=torch.float64), "bias": torch.zeros(1)}
        save_file(tensors if what == "nan_head" else {}, tiny_copy / "calibration" / "model.safetensors")
    else:
        (tiny_copy / CONFIG_NAME).write_text(json.dumps(_detector_config(threshold=float("nan"))))
    write_png(tmp_path / "photo.png", seed=1)
    assert fakescope(["detect", str(tmp_path / "photo.png"), "--model", str(tiny_copy), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"fakescope detect: cannot load {tiny_copy}: {tiny_copy}/{message}"]


def test_non_finite_scores_are_refused_never_printed_as_nan(tiny_copy, tmp_path, capsys, monkeypatch):
    from conftest import write_png

    def broken(self, inputs, plan):  # the forward pass every way of scoring shares
        n = len(inputs["input_ids"])
        return np.full(n, np.nan), np.zeros(n)

    monkeypatch.setattr(TokenProbabilityEstimator, "score_inputs", broken)
    write_png(tmp_path / "photo.png", seed=1)
    assert fakescope(["detect", str(tmp_path / "photo.png"), "--model", str(tiny_copy), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "NaN" not in out
    assert err.splitlines() == [
        f"fakescope detect: cannot score with {tiny_copy}: the model gave non-finite log-probabilities for 1 of 1 "
        "image(s): its weights hold NaN or infinite values, or its dtype overflows"
    ]
