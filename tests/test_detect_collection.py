"""``fakescope detect`` over collections: inputs, the DataLoader preprocessing, resumable output (a real ``kill -9``),
agreement with ``FakeScopeDetector`` image by image, and two processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from conftest import REPO, write_png
from PIL import Image

from modeling.cli import main as fakescope
from modeling.detector import FakeScopeDetector
from modeling.scoring.collection import CollectionError, collect
from modeling.scoring.preprocessing import GENERAL, SPLIT, BatchEncoder
from modeling.scoring.probability import prompt_text
from modeling.scoring.results import ResultsError, ResultStore, parts_dir, read_results, row_schema, run_file

# Scores of one image may differ in the last float32 bits between batches of different composition (a resumed run,
# another process's share): BLAS blocks a matmul by its shape. 1e-5 on the logit is far below any decision and is
# the bound tests/test_probability.py pins for batched against unbatched scoring.
TOLERANCE = 1e-5
SAMPLE_IMAGES = REPO / "fakeinstruct" / "data" / "sample" / "images"


@pytest.fixture(scope="session")
def thousand_images(tmp_path_factory) -> Path:
    """1,000 images in nested folders: sample photographs (JPEG) and random PNGs, plus files that are not images."""
    root = tmp_path_factory.mktemp("thousand") / "images"
    samples = sorted(SAMPLE_IMAGES.glob("*.jpg"))
    for i in range(1000):
        folder = root / f"batch-{i // 250}"
        folder.mkdir(parents=True, exist_ok=True)
        if i % 2:
            shutil.copy(samples[i % len(samples)], folder / f"img-{i:04d}.jpg")
        else:
            write_png(folder / f"img-{i:04d}.png", seed=i, size=48 + i % 40)
    (root / "notes.txt").write_text("not an image")
    return root


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _assert_match(rows: pd.DataFrame, reference: list[dict]) -> None:
    assert list(rows["path"]) == [r["image"] for r in reference]
    for column in ("logit", "p_fake_raw", "p_fake"):
        np.testing.assert_allclose(rows[column], [r[column] for r in reference], rtol=0, atol=TOLERANCE)
    assert list(rows["label"]) == [r["label"] for r in reference]


# -- inputs -------------------------------------------------------------------------------------------------------


def test_collect_folders_globs_lists_and_missing_files(tmp_path):
    for name in ("a/1.png", "a/b/2.JPG", "a/b/c/3.webp", "a/skip.txt", "z.png"):
        write_png(tmp_path / name, seed=1) if not name.endswith(".txt") else (tmp_path / name).write_text("x")
    refs = collect([str(tmp_path / "a")]).refs
    assert [Path(r.key).relative_to(tmp_path).as_posix() for r in refs] == ["a/1.png", "a/b/2.JPG", "a/b/c/3.webp"]
    assert len(collect([str(tmp_path / "a")], recursive=False).refs) == 1
    assert len(collect([str(tmp_path / "a")], extensions=("png",)).refs) == 1
    assert [r.key for r in collect([str(tmp_path / "**" / "*.png")]).refs] == [
        str(tmp_path / "a" / "1.png"),
        str(tmp_path / "z.png"),
    ]
    (tmp_path / "list.csv").write_text("file,label\na/1.png,real\n" + f"{tmp_path / 'z.png'},fake\n")
    (tmp_path / "list.jsonl").write_text(json.dumps({"image": "a/b/2.JPG"}) + "\n")
    (tmp_path / "list.txt").write_text("# one per line\nz.png\n")
    refs = collect([str(tmp_path / n) for n in ("list.csv", "list.jsonl", "list.txt", "missing.png")]).refs
    assert [r.key for r in refs] == [
        str(tmp_path / "a" / "1.png"),
        str(tmp_path / "z.png"),
        str(tmp_path / "a" / "b" / "2.JPG"),
        str(tmp_path / "missing.png"),  # z.png of list.txt was already listed: scored once
    ]
    assert refs[-1].error.startswith("no such file")
    (tmp_path / "bad.csv").write_text("name\nz.png\n")
    with pytest.raises(CollectionError, match="image_column"):
        collect([str(tmp_path / "bad.csv")])
    assert len(collect([str(tmp_path / "bad.csv")], image_column="name").refs) == 1


def test_collect_a_datasets_folder(tmp_path):
    import datasets

    images = [Image.open(p).convert("RGB") for p in sorted(SAMPLE_IMAGES.glob("*.jpg"))[:3]]
    features = datasets.Features({"picture": datasets.Image(), "label": datasets.Value("string")})
    data = datasets.Dataset.from_dict({"picture": images, "label": ["a", "b", "c"]}, features=features)
    datasets.DatasetDict({"test": data, "train": data.select([0])}).save_to_disk(tmp_path / "ds")
    collection = collect([str(tmp_path / "ds")], split="test")
    assert [r.key for r in collection.refs] == [f"{tmp_path / 'ds'}:test/{i}" for i in range(3)]
    assert np.array_equal(np.asarray(collection.load(1)), np.asarray(images[1]))
    assert len(collect([str(tmp_path / "ds")]).refs) == 4  # every split
    with pytest.raises(CollectionError, match="no split"):
        collect([str(tmp_path / "ds")], split="validation")


def test_collect_a_hub_dataset(hub_endpoint):
    import datasets

    images = [Image.open(p).convert("RGB") for p in sorted(SAMPLE_IMAGES.glob("*.jpg"))[:2]]
    repo_id = f"{hub_endpoint.user}/photos"
    features = datasets.Features({"image": datasets.Image()})
    datasets.Dataset.from_dict({"image": images}, features=features).push_to_hub(repo_id, token=hub_endpoint.token)
    collection = collect([f"hf://datasets/{repo_id}"], split="train")
    assert [r.key for r in collection.refs] == [f"hf://datasets/{repo_id}:train/{i}" for i in range(2)]
    assert np.array_equal(np.asarray(collection.load(1)), np.asarray(images[1]))


# -- preprocessing ----------------------------------------------------------------------------------------------


def test_split_preprocessing_gives_the_processors_inputs_bit_for_bit(tiny_model, tmp_path):
    from modeling.tiny.idefics3 import build_tiny_idefics3

    detector = FakeScopeDetector.from_pretrained(tiny_model)
    encoder = BatchEncoder(detector.estimator)
    assert encoder.mode == SPLIT
    rng = np.random.default_rng(3)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in ((40, 90), (77, 77))]
    prompt = prompt_text(detector.processor, detector.config.detection.question)
    prepared = [encoder.prepare(img) for img in images]
    assert all(a.dtype == np.uint8 for a in prepared)
    expected = detector.estimator.encode(images, [prompt] * 2)
    on_device = torch.from_numpy(np.stack(prepared))  # uint8, normalised where the model is (accelerators)
    in_workers = encoder.collate([(i, a, None) for i, a in enumerate(prepared)])["data"]  # normalised (CPU models)
    assert in_workers.dtype == np.float32
    for data in (on_device, in_workers):
        ours = encoder.inputs(encoder.pixels(data), prompt)
        assert set(ours) == set(expected)
        for key in expected:
            assert torch.equal(ours[key], expected[key]), key

    # image splitting: the number of image tokens depends on the image, so the general way
    idefics = FakeScopeDetector.from_pretrained(build_tiny_idefics3(tmp_path / "idefics3"))
    assert BatchEncoder(idefics.estimator).mode == GENERAL


# -- the resumable store ----------------------------------------------------------------------------------------


def test_result_store_parts_merge_in_input_order_and_refuse_another_run(tmp_path):
    schema = row_schema(["texture"])
    run = {"weights": "w1"}

    def row(key, p=0.5, error=None):
        if error:
            return {"path": key, "error": error}
        return {
            "path": key,
            "label": "fake",
            "p_fake": p,
            "p_fake_raw": p,
            "logit": 0.0,
            "calibrated": True,
            "attributes": {"texture": p},
        }

    for suffix in ("parquet", "jsonl"):
        out = tmp_path / f"scores.{suffix}"
        store = ResultStore(out, run, schema, save_every=2)
        store.prepare()
        store.add([row("c"), row("a")])  # a part is written
        store.add([row("b", error="does not decode")])
        assert len(list(parts_dir(out).glob("part-*"))) == 1
        (parts_dir(out) / f".part-x.{suffix}.fkit-host-1-abc.tmp").write_text("half a part")  # a killed write
        assert read_results(out).num_rows == 2  # parts are readable while the run is unfinished
        store.save()
        assert store.done() == {"a", "c"}
        assert store.finish(["a", "b", "c", "d"]) == 3
        assert not parts_dir(out).exists() and run_file(out).is_file()
        table = read_results(out)
        assert table.column("path").to_pylist() == ["a", "b", "c"]
        # the next run retries the error and keeps rows of images it was not given
        again = ResultStore(out, run, schema)
        again.prepare()
        assert again.done() == {"a", "c"}
        again.add([row("b", p=0.9)])
        again.save()
        again.finish(["b", "a"])
        table = read_results(out).to_pylist()
        assert (
            [r["path"] for r in table] == ["b", "a", "c"] and table[0]["p_fake"] == 0.9 and table[0]["error"] is None
        )
        assert table[0]["attributes"] == {"texture": 0.9}
        if suffix == "parquet":
            assert json.loads(pq.read_metadata(out).metadata[b"fakescope_run"]) == run  # provenance travels along
        with pytest.raises(ResultsError, match="another model"):
            ResultStore(out, {"weights": "w2"}, schema).prepare()
        ResultStore(out, {"weights": "w2"}, schema).prepare(overwrite=True)
        assert not out.exists()
    with pytest.raises(ResultsError, match=r"\.parquet or \.jsonl"):
        ResultStore(tmp_path / "scores.csv", run, schema)


# -- the command ------------------------------------------------------------------------------------------------


def test_detect_a_folder_to_parquet_matches_the_detector(calibrated, thousand_images, tmp_path, capsys):
    model, _ = calibrated
    folder = tmp_path / "images"
    shutil.copytree(thousand_images / "batch-0", folder, ignore=lambda _, names: sorted(names)[40:])
    bad = tmp_path / "extra" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not an image")
    out = tmp_path / "scores.parquet"
    argv = ["detect", str(folder), str(bad.parent), "--model", str(model), "--output", str(out), "--attributes"]
    assert fakescope([*argv, "--num_workers", "2", "--batch-size", "16"]) == 1  # one unreadable image
    err = capsys.readouterr().err
    assert f"error: {bad}:" in err and "40 scored, 0 already" in err and "41 rows" in err
    rows = pd.read_parquet(out)
    assert rows["path"].iloc[-1] == str(bad) and "does not decode" in rows["error"].iloc[-1]
    rows = rows.iloc[:-1]
    assert rows["error"].isna().all() and rows["calibrated"].all()
    reference = FakeScopeDetector.from_pretrained(model)(sorted(folder.glob("*")), explain=False, attributes=True)
    reference = [{**r, "image": str(r["image"])} for r in reference]
    _assert_match(rows, reference)
    for got, want in zip(rows["attributes"], reference, strict=True):
        assert got.keys() == want["attributes"].keys()
        np.testing.assert_allclose(list(got.values()), list(want["attributes"].values()), atol=TOLERANCE)

    # the same command again scores nothing new (the broken image is tried again)
    assert fakescope([*argv, "--num_workers", "0"]) == 1
    assert "0 scored, 40 already" in capsys.readouterr().err
    # another configuration is refused, not mixed in
    assert fakescope(["detect", str(folder), "--model", str(model), "--output", str(out)]) == 2
    assert "another model or configuration" in capsys.readouterr().err


def test_killed_run_resumes_and_matches_the_detector_on_1000_images(calibrated, thousand_images, tmp_path):
    """``kill -9`` in the middle of a run over 1,000 images: finished parts stay readable, the same command scores only
    the rest, and the file matches FakeScopeDetector image by image."""
    model, _ = calibrated
    out = tmp_path / "scores.parquet"
    argv = [sys.executable, "-m", "modeling.cli", "detect", str(thousand_images), "--model", str(model)]
    argv += ["--output", str(out), "--no_progress"]
    slow = ["--batch_size", "2", "--save_every", "16", "--num_workers", "1"]  # many small parts: a kill lands mid-run
    process = subprocess.Popen([*argv, *slow], cwd=REPO, env=_env(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list(parts_dir(out).glob("part-*.parquet")):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no part written in time"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    partial = pd.read_parquet(parts_dir(out))  # the parts folder reads as one table
    assert 16 <= len(partial) < 1000 and partial["error"].isna().all()
    assert read_results(out).num_rows == len(partial)

    result = subprocess.run(argv, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"{1000 - len(partial)} scored, {len(partial)} already" in result.stderr
    rows = pd.read_parquet(out)
    assert len(rows) == 1000 and not parts_dir(out).exists()
    paths = sorted(p for p in thousand_images.rglob("*") if p.suffix in (".png", ".jpg"))
    reference = FakeScopeDetector.from_pretrained(model)(paths, explain=False)
    _assert_match(rows, [{**r, "image": str(r["image"])} for r in reference])


def test_detect_jsonl_output_from_a_list_and_explanations(calibrated, thousand_images, tmp_path, capsys):
    model, _ = calibrated
    images = sorted((thousand_images / "batch-1").glob("*"))[:3]
    listing = tmp_path / "list.csv"
    listing.write_text("path\n" + "".join(f"{p}\n" for p in images))
    out = tmp_path / "scores.jsonl"
    argv = ["detect", str(listing), "--model", str(model), "--output", str(out), "--explain", "--batch_size", "2"]
    assert fakescope(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == [str(p) for p in images]
    assert all(isinstance(r["explanation"], str) and r["error"] is None for r in rows)
    detector = FakeScopeDetector.from_pretrained(model)
    assert [r["explanation"] for r in rows] == [r["explanation"] for r in detector(images, explain=True)]


def test_detect_prints_a_note_where_an_explanation_came_out_empty():
    from modeling.cli import _line
    from modeling.scoring.results import NO_TEXT

    row = {"image": "a.jpg", "label": "real", "p_fake": 0.25, "p_fake_raw": 0.3, "calibrated": True}
    assert _line({**row, "explanation": ""}).splitlines()[1] == "  " + NO_TEXT
    assert _line({**row, "explanation": "Soft edges.\nEven grain."}).splitlines()[1:] == [
        "  Soft edges.",
        "  Even grain.",
    ]
    assert len(_line(row).splitlines()) == 1


def test_detect_help_follows_the_cli_conventions(capsys):
    with pytest.raises(SystemExit) as exit_info:
        fakescope(["detect", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--num_workers NUM_WORKERS, --num-workers NUM_WORKERS" in text
    assert "(default: 16)" in text and "examples:\n  fakescope detect" in text and "``" not in text
    assert "accelerate launch --multi_gpu --num_processes 2 -m modeling.cli detect" in text


@pytest.mark.slow
def test_two_processes_give_the_same_rows(calibrated, thousand_images, tmp_path):
    """``accelerate launch --multi_gpu --num_processes 2`` on CPU (not ``--cpu``, which would run one process): each
    process scores every other image, the first merges; the rows equal a one-process run's."""
    model, _ = calibrated
    folder = thousand_images / "batch-2"
    single, double = tmp_path / "one.parquet", tmp_path / "two.parquet"
    common = ["detect", str(folder), "--model", str(model), "--no_progress", "--num_workers", "1"]
    assert fakescope([*common, "--output", str(single)]) == 0
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launcher += ["--main_process_port", str(_free_port())]
    result = subprocess.run(
        [*launcher, "-m", "modeling.cli", *common, "--output", str(double), "-v"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "(process 0 of 2)" in result.stderr  # two processes ran, not one
    assert "already in" in result.stderr and "250 rows" in result.stderr
    one, two = pd.read_parquet(single), pd.read_parquet(double)
    assert list(two["path"]) == list(one["path"])
    for column in ("logit", "p_fake", "p_fake_raw"):
        np.testing.assert_allclose(two[column], one[column], rtol=0, atol=TOLERANCE)
    assert list(two["label"]) == list(one["label"])
