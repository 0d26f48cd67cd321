"""A killed generation, started again with the same command, completes to the uninterrupted result."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import generate_with_one_template, make_records, write_dataset


def command(chains, out, *extra):
    base = [sys.executable, "-m", "fakeinstruct.cli", "-q", "generate", str(chains), "--out", str(out)]
    return [*base, "--shard-size", "40", "--no-progress", *extra]


def finished_shards(out):
    try:
        return len(json.loads((out / "manifest.json").read_text())["shards"])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    chains = write_dataset(root / "data", make_records(600, groups=150))
    reference = root / "reference"
    subprocess.run(command(chains, reference), check=True)
    return chains, reference


def manifest(out):
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.parametrize("kill_after_shards", [0, 2, 8])
def test_kill_and_resume_gives_the_uninterrupted_manifest(big, tmp_path, kill_after_shards):
    chains, reference = big
    out = tmp_path / "out"
    proc = subprocess.Popen(command(chains, out, "--workers", "2"), start_new_session=True)
    deadline = time.monotonic() + 60
    while finished_shards(out) < kill_after_shards and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: main process and workers, mid-write
    proc.wait()
    assert finished_shards(out) < finished_shards(reference), "the run ended before it was killed"
    subprocess.run(command(chains, out), check=True)
    assert manifest(out) == manifest(reference)
    assert not list(out.rglob("*.tmp"))
    for name in ("stats.json", "README.md"):
        assert (out / name).read_text() == (reference / name).read_text().replace(str(reference), str(out))


def test_resume_rewrites_a_corrupted_shard(big, tmp_path):
    chains, reference = big
    out = tmp_path / "out"
    subprocess.run(command(chains, out), check=True)
    entry = next(iter(manifest(out)["shards"].values()))
    (out / entry["path"]).write_bytes(b"garbage")
    subprocess.run(command(chains, out), check=True)
    assert manifest(out) == manifest(reference)


def test_exact_duplicates_are_removed_and_counted(tmp_path):

    records = make_records(6, groups=6)
    copy = dict(records[0], id="copy-of-0")  # the same annotation of the same image, under another id
    chains = write_dataset(tmp_path / "data", [*records, copy])
    result = generate_with_one_template(chains, tmp_path)
    assert result.duplicates == 1 and result.pairs == 6
    keys = []
    for path in (tmp_path / "out").glob("*/*.jsonl"):
        for row in map(json.loads, path.read_text().splitlines()):
            keys.append((row["image_path"], json.dumps(row["messages"])))
    assert len(keys) == len(set(keys)) == result.pairs
