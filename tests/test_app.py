"""The Gradio app: metrics with intervals read tolerantly, the export and Space files, and (slow) the app served from
an exported folder and driven in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from modeling.detector import FakeScopeDetector
from modeling.hub.app import analyse, metric_rows, metrics_markdown
from modeling.hub.export import export
from modeling.hub.space import REQUIREMENTS
from modeling.scoring.results import NO_TEXT

SAMPLE_IMAGE = REPO / "fakeinstruct" / "data" / "sample" / "images" / "sample-0001.jpg"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
INTERVAL = {"value": 0.7, "low": 0.55, "high": 0.86, "groups": 4, "resamples": 2000, "level": 0.95}


def test_metrics_with_and_without_intervals():
    metrics = {
        "split": "test",
        "detector": {
            "calibrated": {"auc": 0.7, "accuracy": 0.6, "n": 32, "intervals": {"auc": INTERVAL}},
            "raw": {"auc": {"value": 0.71, "low": 0.5, "high": 0.9}, "ece": 0.1},
        },
        "baselines": {"spectrum": {"auc": 0.65, "accuracy": None}},
    }
    rows = {(r["scores"], r["metric"]): r for r in metric_rows(metrics)}
    assert set(rows) == {
        ("model (calibrated)", "AUC"),
        ("model (calibrated)", "Accuracy"),
        ("model (raw)", "AUC"),
        ("baseline: spectrum", "AUC"),
    }
    assert (rows["model (calibrated)", "AUC"]["low"], rows["model (calibrated)", "AUC"]["high"]) == (0.55, 0.86)
    assert rows["model (calibrated)", "Accuracy"]["low"] is None
    assert rows["model (raw)", "AUC"]["value"] == 0.71 and rows["model (raw)", "AUC"]["high"] == 0.9
    table = metrics_markdown(metrics)
    assert "(test split)" in table and "| model (calibrated) | AUC | 0.700 | [0.550, 0.860] | 32 |" in table
    assert "| model (calibrated) | Accuracy | 0.600 | n/a | 32 |" in table
    for missing in (None, {}, {"detector": {"raw": "broken"}}):
        assert metrics_markdown(missing).startswith("No test metrics")


def test_analyse_shows_the_detectors_result(calibrated):
    from PIL import Image

    model, _ = calibrated
    detector = FakeScopeDetector.from_pretrained(model)
    detector.config.max_new_tokens = 4
    verdict, p_fake, p_raw, attributes, explanation = analyse(detector, Image.open(SAMPLE_IMAGE))
    expected = detector(SAMPLE_IMAGE, explain=False, attributes=True)
    assert p_fake == round(expected["p_fake"], 4) and p_raw == round(expected["p_fake_raw"], 4)
    assert verdict == {"fake": expected["p_fake"], "real": 1 - expected["p_fake"]}
    assert attributes == expected["attributes"] and isinstance(explanation, str)
    assert analyse(detector, None) == (None, None, None, None, "")


def test_analyse_says_so_when_the_explanation_came_out_empty(calibrated, monkeypatch):
    from PIL import Image

    model, _ = calibrated
    detector = FakeScopeDetector.from_pretrained(model)
    image = Image.open(SAMPLE_IMAGE)
    monkeypatch.setattr(detector, "explain", lambda images, progress=False: [""] * len(images))
    assert analyse(detector, image, explain=True)[-1] == NO_TEXT
    assert analyse(detector, image, explain=False)[-1] == ""
    monkeypatch.setattr(detector, "explain", lambda images, progress=False: ["Blurred hair strands."] * len(images))
    assert analyse(detector, image, explain=True)[-1] == "Blurred hair strands."


def test_export_with_app_is_a_folder_that_runs_on_its_own(calibrated, evaluated, tmp_path):
    model, _ = calibrated
    out = tmp_path / "publish"
    export(model, output_dir=out, eval_dir=evaluated[0].output_dir, app=True)
    for name in (
        "app.py",
        "requirements.txt",
        "eval/metrics.json",
        "src/modeling/hub/app.py",
        "src/fakeinstruct/images.py",
    ):
        assert (out / name).is_file(), name
    assert (out / "src" / "fakeinstruct" / "chain" / "taxonomy.yaml").is_file()
    assert not (out / "src" / "fakeinstruct" / "data").exists()  # the bundled sample is not code
    assert not list(out.rglob("__pycache__"))
    # every base dependency of the toolkit is in requirements.txt
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    names = {Requirement(r).name.lower() for r in REQUIREMENTS}
    base = [Requirement(r) for r in requires("fakescope-kit")]
    base = [r for r in base if r.marker is None or "extra" not in str(r.marker)]
    assert base and {r.name.lower() for r in base} <= names
    # app.py runs from the folder with its own copy of the toolkit (no PYTHONPATH), here up to its --help
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "app.py", "--help"], cwd=out, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--model" in result.stdout and "--port" in result.stdout


def test_push_to_hub_script_pushes_the_model_with_its_app_and_a_space(hub_endpoint, calibrated, tmp_path):
    hub = hub_endpoint
    model, _ = calibrated
    repo_id, space_id = f"{hub.user}/fakescope-app", f"{hub.user}/fakescope-demo"
    argv = [sys.executable, "scripts/push_to_hub.py", "--model", str(model), "--repo_id", repo_id, "--app"]
    argv += ["--space_repo_id", space_id, "--output_dir", str(tmp_path / "publish")]
    result = subprocess.run(argv, cwd=REPO, env=hub.env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "publish" / "app.py").is_file()
    model_files = {f.path for f in hub.api.list_repo_tree(repo_id, recursive=True)}
    assert {"app.py", "requirements.txt", "src/modeling/hub/app.py", "model.safetensors"} <= model_files
    files = {f.path for f in hub.api.list_repo_tree(space_id, repo_type="space", recursive=True)}
    assert {"app.py", "requirements.txt", "README.md", "app_config.json", "src/modeling/hub/app.py"} <= files
    assert "model.safetensors" not in files  # the Space loads the model repo
    readme = Path(hub.api.hf_hub_download(space_id, "README.md", repo_type="space"))
    meta = yaml.safe_load(readme.read_text().split("---")[1])
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["models"] == [repo_id]
    config = json.loads(Path(hub.api.hf_hub_download(space_id, "app_config.json", repo_type="space")).read_text())
    assert config == {"model": repo_id}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_browser():
    """Chromium and its driver from the system (Debian's chromium, chromium-driver), Selenium and Gradio: a missing
    one fails the test with what to install (.ci/run installs them; `make slow_test` installs the app extra)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    for module in ("selenium", "gradio"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        pytest.fail(f"needs {', '.join(missing)} (apt-get install chromium chromium-driver; pip install -e .[app])")


@pytest.mark.slow
def test_the_app_in_headless_chromium(calibrated, evaluated, tmp_path):
    """Serve an exported folder's app.py on localhost, upload a sample image in headless Chromium, read p_fake off
    the page and save a screenshot."""
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    model, _ = calibrated
    out = tmp_path / "publish"
    export(model, output_dir=out, eval_dir=evaluated[0].output_dir, app=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the folder's own src/
    env |= {"GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "HF_HUB_OFFLINE": "1"}
    log = open(tmp_path / "app.log", "w")  # noqa: SIM115  (closed below, after the server)
    server = subprocess.Popen(
        [sys.executable, "app.py", "--model", str(out), "--port", str(port)], cwd=out, env=env, stdout=log, stderr=log
    )
    driver = None
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (tmp_path / "app.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the app did not start:\n" + (tmp_path / "app.log").read_text()
            time.sleep(0.5)

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1600",
            f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 120)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#image-input input[type=file]"))
        image = tmp_path / "upload.jpg"
        shutil.copy(SAMPLE_IMAGE, image)
        upload.send_keys(str(image))

        def scored(d):
            if not any(word in d.find_element(By.ID, "verdict").text for word in ("fake", "real")):
                return False
            return d.find_element(By.CSS_SELECTOR, "#p-fake input").get_attribute("value") or False

        shown = float(wait.until(scored))
        shown_raw = float(driver.find_element(By.CSS_SELECTOR, "#p-fake-raw input").get_attribute("value"))
        attributes = driver.find_element(By.ID, "attributes").text
        metrics = driver.find_element(By.ID, "metrics").text
        screenshot = tmp_path / "app.png"
        assert driver.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
        print(f"screenshot: {screenshot}")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
        log.close()
    expected = FakeScopeDetector.from_pretrained(model)(SAMPLE_IMAGE, explain=False, attributes=True)
    assert shown == pytest.approx(expected["p_fake"], abs=5e-5)  # the page shows 4 decimals
    assert shown_raw == pytest.approx(expected["p_fake_raw"], abs=5e-5)
    assert all(name in attributes for name in expected["attributes"])
    assert "AUC" in metrics and "Accuracy" in metrics
