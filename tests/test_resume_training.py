"""Resuming only from complete checkpoints, and scripts/sft.py stopped by a real SIGTERM, then resumed by the same
command (``--resume_from_checkpoint auto``) to the weights of an uninterrupted run: full fine-tuning, LoRA, DeepSpeed
ZeRO-2 and two DDP processes of which only one is signalled. The runs that need an uninterrupted reference or a
launcher are marked slow; the signalled run itself is shared by the module."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import run_logged as run
from safetensors.torch import load_file

from modeling.training.resume import (
    COMPLETE_MARKER,
    CompleteCheckpointsMixin,
    incomplete_reason,
    mark_complete,
    resolve_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "sft.py"
RECIPES = REPO / "recipes"
DEMO_RECIPE = RECIPES / "tiny-llava" / "sft" / "config_demo.yaml"
LANGUAGE_MODEL_LORA = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
LORA = ["--use_peft", "true", "--lora_r", "8", "--lora_alpha", "16", "--lora_target_modules", LANGUAGE_MODEL_LORA]
LORA += ["--lora_modules_to_save", "multi_modal_projector", "--learning_rate", "1e-2"]
STEPS, SAVE_STEPS, PREEMPTED = 8, 3, 75


# ---- which checkpoint resume picks ------------------------------------------------------------------------------


def fake_checkpoint(root: Path, step: int, complete: bool = True) -> Path:
    folder = root / f"checkpoint-{step}"
    (folder / "global_step").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w" * 64)
    (folder / "global_step" / "optim_states.pt").write_bytes(b"o" * 32)
    if complete:
        mark_complete(folder, step)
    return folder


def test_resume_last_needs_a_complete_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"):
        resolve_checkpoint("last", str(tmp_path))
    assert resolve_checkpoint("auto", str(tmp_path)) is None  # a first run: start from scratch
    assert resolve_checkpoint("auto", str(tmp_path / "not-yet")) is None
    fake_checkpoint(tmp_path, 3, complete=False)
    with pytest.raises(ValueError, match="none is complete"):  # never silently from scratch over checkpoints
        resolve_checkpoint("auto", str(tmp_path))
    fake_checkpoint(tmp_path, 12)
    fake_checkpoint(tmp_path, 4)
    for value in ("last", "true", "auto", "Latest"):
        assert resolve_checkpoint(value, str(tmp_path)) == str(tmp_path / "checkpoint-12")
    assert resolve_checkpoint(None, str(tmp_path)) is None and resolve_checkpoint("false", str(tmp_path)) is None


def test_incomplete_newer_checkpoints_are_skipped_with_a_warning(tmp_path, caplog):
    """A kill in the middle of a save leaves a folder without its marker, or one whose files do not match it."""
    fake_checkpoint(tmp_path, 4)
    fake_checkpoint(tmp_path, 8, complete=False)
    truncated = fake_checkpoint(tmp_path, 12)
    with open(truncated / "model.safetensors", "r+b") as file:
        file.truncate(10)
    missing = fake_checkpoint(tmp_path, 16)
    (missing / "global_step" / "optim_states.pt").unlink()
    garbled = fake_checkpoint(tmp_path, 20)
    (garbled / COMPLETE_MARKER).write_text('{"files": ')
    (tmp_path / "checkpoint-24").write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="modeling.training.resume"):
        assert resolve_checkpoint("last", str(tmp_path)) == str(tmp_path / "checkpoint-4")
    skipped = {Path(r.args[0]).name: r.args[1] for r in caplog.records if r.getMessage().startswith("skipping")}
    assert skipped == {
        "checkpoint-8": f"no {COMPLETE_MARKER}",
        "checkpoint-12": "model.safetensors has 10 bytes, 64 written",
        "checkpoint-16": "global_step/optim_states.pt is missing",
        "checkpoint-20": skipped["checkpoint-20"],
    }
    assert skipped["checkpoint-20"].startswith(f"unreadable {COMPLETE_MARKER}")


def flip_a_byte(path: Path, offset: int = 20) -> None:
    """Change one byte of ``path`` in place: same size, same name, other content."""
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))


def test_weights_changed_after_the_marker_fall_back_to_the_previous_checkpoint(tmp_path, caplog):
    """The marker holds the SHA-256 of each weight file: a flipped byte in the newest checkpoint's weights (sizes all
    still right) sends resume to the checkpoint before it, with a warning; named explicitly, it is refused."""
    fake_checkpoint(tmp_path, 4)
    newest = fake_checkpoint(tmp_path, 8)
    flip_a_byte(newest / "model.safetensors")
    with caplog.at_level(logging.WARNING, logger="modeling.training.resume"):
        assert resolve_checkpoint("auto", str(tmp_path)) == str(tmp_path / "checkpoint-4")
    assert f"skipping incomplete checkpoint {newest} (model.safetensors does not match the SHA-256" in caplog.text
    with pytest.raises(ValueError, match="SHA-256"):
        resolve_checkpoint(str(newest), str(tmp_path))


def test_a_named_checkpoint_is_refused_only_when_its_marker_contradicts_it(tmp_path, caplog):
    legacy = fake_checkpoint(tmp_path, 2, complete=False)  # written before markers existed
    with caplog.at_level(logging.WARNING, logger="modeling.training.resume"):
        assert resolve_checkpoint(str(legacy), str(tmp_path)) == str(legacy)
    assert "may be incomplete" in caplog.text
    broken = fake_checkpoint(tmp_path, 4)
    (broken / "model.safetensors").write_bytes(b"w")
    with pytest.raises(ValueError, match="incomplete"):
        resolve_checkpoint(str(broken), str(tmp_path))
    with pytest.raises(ValueError, match="not a folder"):
        resolve_checkpoint(str(tmp_path / "checkpoint-9"), str(tmp_path))


class WritesACheckpoint:
    """Stands in for ``Trainer._save_checkpoint``: records what it sees, then writes a file."""

    def _get_output_dir(self, trial):
        return self.args.output_dir

    def _save_checkpoint(self, model, trial):
        folder = Path(self.args.output_dir, f"checkpoint-{self.state.global_step}")
        self.seen.append(((folder / COMPLETE_MARKER).exists(), self.args.save_total_limit))
        folder.mkdir(exist_ok=True)
        (folder / "model.safetensors").write_bytes(b"w" * self.state.global_step)


class Saver(CompleteCheckpointsMixin, WritesACheckpoint):
    def __init__(self, output_dir: Path, limit: int):
        self.args = SimpleNamespace(output_dir=str(output_dir), should_save=True, save_total_limit=limit)
        self.state = SimpleNamespace(global_step=0, best_model_checkpoint=None)
        self.accelerator = SimpleNamespace(wait_for_everyone=lambda: None)
        self.seen = []


def test_checkpoints_are_marked_last_and_rotated_after(tmp_path):
    saver = Saver(tmp_path, limit=1)
    for step in (2, 4, 4):  # the last one writes checkpoint-4 again, as a resumed run can
        saver.state.global_step = step
        saver._save_checkpoint(None, None)
        assert incomplete_reason(tmp_path / f"checkpoint-{step}") is None
    # transformers' rotation was off while the folder was written; a folder being rewritten was never marked
    assert saver.seen == [(False, None), (False, None), (False, None)]
    assert saver.args.save_total_limit == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]  # rotated once 4 was complete
    marker = json.loads((tmp_path / "checkpoint-4" / COMPLETE_MARKER).read_text())
    digest = hashlib.sha256(b"w" * 4).hexdigest()
    assert marker == {"global_step": 4, "files": {"model.safetensors": 4}, "sha256": {"model.safetensors": digest}}


# ---- scripts/sft.py, a real SIGTERM ------------------------------------------------------------------------------


def sft_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """One command for the reference, the signalled and the resumed run."""
    return [
        "--config", str(DEMO_RECIPE),
        "--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(out),
        "--max_steps", str(STEPS), "--per_device_train_batch_size", "8", "--learning_rate", "3e-3",
        "--lr_scheduler_type", "cosine", "--warmup_steps", "0", "--logging_steps", "1", "--do_eval", "false",
        "--save_strategy", "steps", "--save_steps", str(SAVE_STEPS), "--resume_from_checkpoint", "auto",
        "--disable_tqdm", "true",
        *extra,
    ]  # fmt: skip


def accelerate(config: str, *options: str) -> list[str]:
    launcher = [str(Path(sys.executable).with_name("accelerate")), "launch"]
    return [*launcher, "--config_file", str(RECIPES / "accelerate_configs" / f"{config}.yaml"), *options]


def worker_pid(launcher_pid: int, rank: int) -> int:
    """The pid of the training process of ``rank`` among the launcher's children (from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == launcher_pid and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    raise LookupError(f"no rank {rank} under process {launcher_pid}")


def run_signalled(command: list[str], log: Path, target=None, timeout: int = 600) -> tuple[int, str]:
    """Run ``command`` and send SIGTERM once it logs its first loss (to ``target(process)``, or the process itself);
    return its exit status and output."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.prefix) / "torch_extensions"))
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    lines, sent = [], False
    try:
        for line in process.stdout:
            lines.append(line)
            if not sent and line.startswith("{'loss'"):
                os.kill(target(process) if target else process.pid, signal.SIGTERM)
                sent = True
        status = process.wait()
    finally:
        watchdog.cancel()
    output = "".join(lines)
    log.write_text(output, encoding="utf-8")
    assert sent, f"no loss was logged:\n{output[-4000:]}"
    return status, output


def stopped_step(output: str) -> int:
    line = next((x for x in output.splitlines() if "preempted by" in x and "stopped after step" in x), None)
    assert line, f"the run did not report a preemption:\n{output[-4000:]}"
    return int(line.split("stopped after step ")[1].split(",")[0])


def assert_same_tensors(actual: Path, expected: Path) -> None:
    got, want = load_file(actual), load_file(expected)
    assert got.keys() == want.keys() and want
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-5, msg=name)


def assert_stopped_on_a_complete_checkpoint(out: Path, output: str) -> Path:
    step = stopped_step(output)
    assert 1 <= step < STEPS, step
    checkpoint = out / f"checkpoint-{step}"
    assert incomplete_reason(checkpoint) is None
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == step
    assert resolve_checkpoint("last", str(out)) == str(checkpoint)
    assert max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")) == step
    assert not (out / "model.safetensors").exists() and not (out / "adapter_model.safetensors").exists()
    return checkpoint


@pytest.fixture(scope="module")
def signalled(tiny_model, fakeinstruct_dir, tmp_path_factory):
    """scripts/sft.py with SIGTERM after its first logged step."""
    out = tmp_path_factory.mktemp("signalled") / "run"
    command = [sys.executable, str(SCRIPT), *sft_args(tiny_model, fakeinstruct_dir, out)]
    status, output = run_signalled(command, out.parent / "sft.log")
    return out, status, output


def test_sigterm_stops_with_a_complete_checkpoint_and_status_75(signalled, tiny_model):
    from transformers import AutoModelForImageTextToText

    out, status, output = signalled
    assert status == PREEMPTED, output[-4000:]
    assert "process 0 received SIGTERM" in output
    assert "preempted by SIGTERM" in output and f"(exit status {PREEMPTED})" in output
    checkpoint = assert_stopped_on_a_complete_checkpoint(out, output)
    assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"} <= {
        p.name for p in checkpoint.iterdir()
    }
    _, info = AutoModelForImageTextToText.from_pretrained(checkpoint, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    initial = load_file(tiny_model / "model.safetensors")
    assert any(not torch.equal(initial[k], v) for k, v in load_file(checkpoint / "model.safetensors").items())


@pytest.mark.slow
def test_same_command_resumes_to_the_uninterrupted_weights(signalled, tiny_model, fakeinstruct_dir, tmp_path):
    """Past newer checkpoints that a kill cut short (weights truncated) or whose weights changed after their marker (a
    flipped byte): skipped with a warning."""
    reference = tmp_path / "reference"
    run([sys.executable, str(SCRIPT), *sft_args(tiny_model, fakeinstruct_dir, reference)], tmp_path / "ref.log")
    out = tmp_path / "run"
    shutil.copytree(signalled[0], out)
    step = stopped_step(signalled[2])
    torn = shutil.copytree(out / f"checkpoint-{step}", out / f"checkpoint-{step + 1}")
    with open(torn / "model.safetensors", "r+b") as file:
        file.truncate(1000)
    changed = shutil.copytree(out / f"checkpoint-{step}", out / f"checkpoint-{step + 2}")
    flip_a_byte(changed / "model.safetensors", offset=(changed / "model.safetensors").stat().st_size - 10)
    output = run([sys.executable, str(SCRIPT), *sft_args(tiny_model, fakeinstruct_dir, out)], tmp_path / "resume.log")
    assert f"skipping incomplete checkpoint {torn}" in output
    assert f"skipping incomplete checkpoint {changed} (model.safetensors does not match the SHA-256" in output
    assert f"resuming from {out / f'checkpoint-{step}'}" in output and "loading the weights of" in output
    assert_same_tensors(out / "model.safetensors", reference / "model.safetensors")
    assert incomplete_reason(out / f"checkpoint-{STEPS}") is None


@pytest.mark.slow
def test_lora_resumes_to_the_uninterrupted_adapter(tiny_model, fakeinstruct_dir, tmp_path):
    command = [sys.executable, str(SCRIPT), *sft_args(tiny_model, fakeinstruct_dir, tmp_path / "run", *LORA)]
    status, output = run_signalled(command, tmp_path / "signalled.log")
    assert status == PREEMPTED, output[-4000:]
    checkpoint = assert_stopped_on_a_complete_checkpoint(tmp_path / "run", output)
    assert (checkpoint / "adapter_model.safetensors").is_file()
    run(command, tmp_path / "resume.log")
    reference = tmp_path / "reference"
    run([sys.executable, str(SCRIPT), *sft_args(tiny_model, fakeinstruct_dir, reference, *LORA)], tmp_path / "ref.log")
    assert_same_tensors(tmp_path / "run" / "adapter_model.safetensors", reference / "adapter_model.safetensors")


@pytest.mark.slow
def test_deepspeed_zero2_resumes_to_the_uninterrupted_weights(tiny_model, fakeinstruct_dir, tmp_path):
    """SIGTERM to `accelerate launch`: torchrun's agent forwards it to the worker, which checkpoints and exits 75
    (the launcher then reports the signal and exits non-zero itself)."""
    launcher = accelerate("zero2", "--num_processes", "1", "--mixed_precision", "no")
    command = [*launcher, str(SCRIPT), *sft_args(tiny_model, fakeinstruct_dir, tmp_path / "run")]
    status, output = run_signalled(command, tmp_path / "signalled.log")
    assert status != 0 and f"(exit status {PREEMPTED})" in output, output[-4000:]
    checkpoint = assert_stopped_on_a_complete_checkpoint(tmp_path / "run", output)
    assert (checkpoint / "latest").is_file()  # DeepSpeed's own checkpoint, listed in the marker
    assert any(
        name.startswith("global_step") for name in json.loads((checkpoint / COMPLETE_MARKER).read_text())["files"]
    )
    output = run(command, tmp_path / "resume.log")
    assert "DEEPSPEED, ZeRO stage 2" in output
    reference = tmp_path / "reference"
    run([*launcher, str(SCRIPT), *sft_args(tiny_model, fakeinstruct_dir, reference)], tmp_path / "ref.log")
    assert_same_tensors(tmp_path / "run" / "model.safetensors", reference / "model.safetensors")


@pytest.mark.slow
def test_ddp_ranks_stop_together_when_one_is_signalled(tiny_model, fakeinstruct_dir, tmp_path):
    """Only rank 1 gets SIGTERM: the flags are all-reduced, so both ranks save the same step and exit 75."""
    launcher = accelerate("ddp", "--multi_gpu", "--num_processes", "2", "--mixed_precision", "no")
    out = tmp_path / "run"
    command = [*launcher, str(SCRIPT), *sft_args(tiny_model, fakeinstruct_dir, out)]
    command += ["--per_device_train_batch_size", "4"]
    status, output = run_signalled(command, tmp_path / "signalled.log", target=lambda p: worker_pid(p.pid, 1))
    assert status != 0, output[-4000:]
    assert "process 1 received SIGTERM" in output and "process 0 received" not in output
    assert output.count(f"(exit status {PREEMPTED})") == 2 and output.count(f"exitcode  : {PREEMPTED}") == 2
    checkpoint = assert_stopped_on_a_complete_checkpoint(out, output)
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= set(
        json.loads((checkpoint / COMPLETE_MARKER).read_text())["files"]
    )
    run(command, tmp_path / "resume.log")
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == STEPS
