"""The output folder's owner: what it refuses, and temporary files that only we make and only we remove."""

import json
import os
import subprocess
import sys

import pytest

from fakeinstruct.errors import FakeInstructError
from fakeinstruct.files import atomic_write, is_stale_temp, is_temp, remove_stale_temps, temp_prefix
from fakeinstruct.folder import CONFIG_FILE, MANIFEST_FILE, FakeInstructFolder
from fakeinstruct.generation import GenerateConfig, generate
from fakeinstruct.loading import load_fakeinstruct


@pytest.fixture
def generated(dataset, tmp_path):
    out = tmp_path / "out"
    generate(GenerateConfig(chains=str(dataset), out=str(out), progress=False, shard_size=40, file_format="jsonl"))
    return out


def test_folder_knows_its_shards_and_plan(generated):
    folder = FakeInstructFolder.open(generated)
    shards = folder.shards()
    assert set(shards) == {"train", "validation", "test"}
    assert sorted(p.name for paths in shards.values() for p in paths) == sorted(
        f"{name.rpartition('/')[2]}.jsonl" for name in folder.planned()
    )
    assert folder.missing() == [] and folder.format == "trl" and folder.image_mode == "relative"


def test_an_interrupted_folder_is_refused_until_finished(dataset, generated):
    manifest = json.loads((generated / MANIFEST_FILE).read_text())
    lost = sorted(manifest["shards"])[1]
    del manifest["shards"][lost]
    (generated / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(FakeInstructError, match=f"incomplete: 1 planned shard.*{lost}"):
        load_fakeinstruct(generated)
    from fakeinstruct.report.quality import measure

    with pytest.raises(FakeInstructError, match="incomplete"):
        measure(generated)
    # the same command finishes it, and then it loads
    generate(
        GenerateConfig(chains=str(dataset), out=str(generated), progress=False, shard_size=40, file_format="jsonl")
    )
    assert FakeInstructFolder.open(generated).missing() == []
    assert len(load_fakeinstruct(generated)["train"]) > 0


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (CONFIG_FILE, '{"identity": {"format": "tr', "the generation config is unreadable"),
        (CONFIG_FILE, "[]", "the generation config is not a JSON object"),
        (MANIFEST_FILE, "{}", "the shard manifest has no shards"),
    ],
)
def test_a_corrupt_folder_is_a_clear_error_that_overwrite_gets_past(dataset, generated, name, content, message):
    (generated / name).write_text(content)
    config = GenerateConfig(
        chains=str(dataset), out=str(generated), progress=False, shard_size=40, file_format="jsonl"
    )
    with pytest.raises(FakeInstructError, match=message) as info:
        generate(config)
    assert "--overwrite" in str(info.value)
    config.overwrite = True
    assert generate(config).pairs > 0


def test_out_that_is_a_file_is_refused(dataset, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FakeInstructError, match="is a file, not a folder"):
        generate(GenerateConfig(chains=str(dataset), out=str(tmp_path / "file"), progress=False))


def test_temp_names_say_whose_they_are(tmp_path):
    with atomic_write(tmp_path / "shard.parquet") as handle:
        (temp,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert temp.name.startswith(temp_prefix("shard.parquet")) and not is_stale_temp(temp)  # ours, alive
        handle.write(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["shard.parquet"]


def test_cleanup_removes_only_dead_processes_temps(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    own = tmp_path / f"{temp_prefix('a.jsonl')}x1.tmp"
    stale = tmp_path / "train" / f"{temp_prefix('b.jsonl').replace(str(os.getpid()), str(dead_pid))}x2.tmp"
    user = tmp_path / "images" / ".shot.tmp"  # an input image that happens to look like a temporary file
    other_host = tmp_path / ".c.jsonl.fkit-elsewhere-1-x3.tmp"
    for path in (own, stale, user, other_host):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == [stale]
    assert own.exists() and user.exists() and other_host.exists() and not stale.exists()


def test_a_second_writer_neither_refuses_the_folder_nor_removes_the_first_writers_temps(dataset, tmp_path):
    out = tmp_path / "out"
    config = GenerateConfig(chains=str(dataset), out=str(out), progress=False, shard_size=40, file_format="jsonl")
    out.mkdir()
    # writer A has just started: its config is still a temporary file, the only entry of the folder
    with atomic_write(out / CONFIG_FILE) as a_config:
        generate(config)  # writer B, on the same --out
        a_config.write((out / CONFIG_FILE).read_bytes())
    expected = (out / MANIFEST_FILE).read_bytes()
    shard = out / "train" / "train-00000.jsonl"
    # writer A is mid-shard when B starts again (and cleans up what dead writers left)
    with atomic_write(shard) as a_shard:
        generate(config)
        a_shard.write(shard.read_bytes())
    # A's writes landed (its temporary files were left alone) and the folder is whole
    assert not [p for p in out.rglob("*") if is_temp(p)]
    assert (out / MANIFEST_FILE).read_bytes() == expected
    assert len(load_fakeinstruct(out)["train"]) > 0


def test_two_generate_commands_on_one_out_both_finish(dataset, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "fakeinstruct.cli", "-q", "generate", str(dataset), "--out", str(out)]
    command += ["--shard_size", "10", "--file_format", "jsonl", "--no_progress"]
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert FakeInstructFolder.open(out).missing() == []
    assert not [p for p in out.rglob("*") if is_temp(p)]
    assert len(load_fakeinstruct(out)["train"]) > 0


# Loaded at start-up by every process of a command run with this folder first on PYTHONPATH: in generation's worker
# processes only, the disk fills up when a shard is flushed to it.
DISK_FULL_IN_WORKERS = """
import errno, multiprocessing, os

_fsync = os.fsync


def fsync(fd):
    if multiprocessing.parent_process() is not None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _fsync(fd)


os.fsync = fsync
"""


def test_a_full_disk_in_the_workers_is_one_line_leaves_no_temp_and_the_same_command_finishes(dataset, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "fakeinstruct.cli", "-q", "generate", str(dataset), "--out", str(out)]
    command += ["--shard_size", "10", "--file_format", "jsonl", "--no_progress", "--workers", "2"]
    (tmp_path / "fault").mkdir()
    (tmp_path / "fault" / "sitecustomize.py").write_text(DISK_FULL_IN_WORKERS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "fault"), os.environ.get("PYTHONPATH", "")]))
    full = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert full.returncode == 2
    assert full.stderr.splitlines() == [
        f"error: {out}: cannot write the output folder: No space left on device; free some space and run the same "
        "command again: the shards already written are kept"
    ]
    assert not [p for p in out.rglob("*") if is_temp(p)]
    assert subprocess.run(command, capture_output=True, timeout=300).returncode == 0
    assert FakeInstructFolder.open(out).missing() == []


def test_a_read_only_out_is_one_line(dataset, tmp_path, monkeypatch, capsys):
    import errno
    import tempfile

    from fakeinstruct.cli import main

    out = tmp_path / "out"
    out.mkdir()

    def read_only(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), dir)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)  # as root, chmod would not stop the writes
    assert main(["-q", "generate", str(dataset), "--out", str(out), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"error: {out}: cannot write the output folder: Read-only file system; the file system is read-only: "
        "choose another --out"
    ]
    assert list(out.iterdir()) == []
