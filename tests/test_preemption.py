"""modeling.training.preemption: SIGTERM/SIGINT are recorded, not fatal; every process stops at the same optimizer
step; the run ends on a complete checkpoint that reloads to the model in memory, and resuming it ends where an
uninterrupted run does. Real signals throughout (sent to this process); the scripts/sft.py subprocess runs are in
test_resume_training.

The in-process runs go through ``modeling.training.sft.run_sft`` with the arguments scripts/sft.py parses, on the tiny
LLaVA."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainerControl, TrainerState

import modeling.training.sft as sft
from modeling.training.preemption import PreemptionCallback, TrainingPreempted
from modeling.training.resume import incomplete_reason

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "sft.py"
DEMO_RECIPE = REPO / "recipes" / "tiny-llava" / "sft" / "config_demo.yaml"
STEPS, SAVE_STEPS, STOP_STEP = 5, 4, 2


def wait_for(condition, seconds: float = 5.0) -> None:
    """Python runs a signal handler between bytecodes of the main thread: give it a moment."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


# ---- the handler records, nothing else ----------------------------------------------------------------------------


def test_sigterm_is_recorded_once_and_the_handlers_come_back():
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    signals = PreemptionCallback()
    assert signals.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: signals.received is not None)
        assert signals.received == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # a launcher forwarding the scheduler's signal: not fatal either
        with pytest.raises(KeyboardInterrupt):  # a second signal, and it is Ctrl-C: the person wants out now
            os.kill(os.getpid(), signal.SIGINT)
            wait_for(lambda: False, seconds=2)
        assert signals.received == signal.SIGTERM
    finally:
        signals.restore()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == previous


def test_first_sigint_is_recorded_too():
    signals = PreemptionCallback()
    signals.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        wait_for(lambda: signals.received is not None)
    finally:
        signals.restore()
    assert signals.received == signal.SIGINT


def test_callback_asks_for_a_checkpoint_and_a_stop_at_the_step_end():
    callback = PreemptionCallback()
    args = SimpleNamespace(device="cpu", process_index=0)
    state, control = TrainerState(), TrainerControl()
    state.global_step = 7
    callback.on_step_end(args, state, control)
    assert not (control.should_save or control.should_training_stop) and callback.stopped_at is None

    callback.received = signal.SIGTERM
    control.should_evaluate = True
    callback.on_step_end(args, state, control)
    assert control.should_save and control.should_training_stop and not control.should_evaluate
    assert (callback.stopped_at, callback.signal_name) == (7, "SIGTERM")
    control.should_save = control.should_evaluate = True  # as an epoch end that coincides with the stop asks
    callback.on_epoch_end(args, state, control)  # the step's checkpoint is written already
    assert not (control.should_save or control.should_evaluate)


def stops(callback: PreemptionCallback, received: int | None, rank: int = 0) -> bool:
    """Whether ``callback`` ends training at a step end when this process has recorded ``received``."""
    callback.received, control = received, TrainerControl()
    callback.on_step_end(SimpleNamespace(device="cpu", process_index=rank), TrainerState(), control)
    return control.should_training_stop


def _agree(rank: int, port: int, rounds: list[list[bool]], out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=len(rounds[0]))
    try:
        stopped = [stops(PreemptionCallback(), signal.SIGTERM if flags[rank] else None, rank) for flags in rounds]
        Path(out, f"rank{rank}").write_text(json.dumps(stopped))
    finally:
        dist.destroy_process_group()


def test_all_ranks_agree_when_one_rank_is_signalled(tmp_path):
    """Two gloo processes at a step end: one process's signal stops both (the all-reduce of the callback)."""
    rounds = [[False, True], [False, False], [True, False]]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.multiprocessing.spawn(_agree, args=(port, rounds, str(tmp_path)), nprocs=2)
    expected = [any(flags) for flags in rounds]
    assert [json.loads((tmp_path / f"rank{rank}").read_text()) for rank in range(2)] == [expected, expected]
    assert stops(PreemptionCallback(), signal.SIGTERM) and not stops(PreemptionCallback(), None)  # no process group


# ---- a whole run, in process ------------------------------------------------------------------------------------


class SignalMidStep(TrainerCallback):
    """Send ``signum`` to this process between the two micro-batches of optimizer step ``step``."""

    def __init__(self, step: int, signum: int):
        self.step, self.signum, self.sent = step, signum, False

    def on_substep_end(self, args, state, control, **kwargs):
        if state.global_step + 1 == self.step and not self.sent:
            handler = signal.getsignal(self.signum)
            # without the run's handler the signal would end the test process: fail instead
            assert isinstance(getattr(handler, "__self__", None), PreemptionCallback), handler
            os.kill(os.getpid(), self.signum)
            self.sent = True


LORA = ["--use_peft", "true", "--lora_r", "8", "--lora_alpha", "16", "--lora_modules_to_save", "multi_modal_projector"]
LORA += ["--lora_target_modules", r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"]


def run_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """One command for the reference, the interrupted and the resumed run; two micro-batches per optimizer step."""
    return [
        "--config", str(DEMO_RECIPE),
        "--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(out),
        "--max_steps", str(STEPS), "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2",
        "--learning_rate", "3e-3", "--lr_scheduler_type", "cosine", "--warmup_steps", "0", "--logging_steps", "1",
        "--do_eval", "false", "--save_strategy", "steps", "--save_steps", str(SAVE_STEPS),
        "--resume_from_checkpoint", "auto", "--disable_tqdm", "true",
        *extra,
    ]  # fmt: skip


def run_in_process(argv: list[str], monkeypatch, *callbacks):
    """``modeling.training.sft.run_sft`` on what scripts/sft.py parses from ``argv``, with extra callbacks."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sft_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    build = sft.build_trainer

    def build_with_callbacks(*args):
        trainer = build(*args)
        for callback in callbacks:
            trainer.add_callback(callback)
        return trainer

    monkeypatch.setattr(sft, "build_trainer", build_with_callbacks)
    return sft.run_sft(*script.make_parser().parse_args_and_config(argv))


def logits(model, trainer) -> torch.Tensor:
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    inputs = {k: batch[k].to(model.device) for k in ("input_ids", "attention_mask", "pixel_values")}
    with torch.no_grad():
        return model.eval()(**inputs).logits


def assert_reloads_to(folder: Path, trainer, base: Path) -> None:
    """The checkpoint's weights (or adapter on ``base``), loaded fresh, give the logits of the model in memory."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    adapter = (folder / "adapter_model.safetensors").is_file()
    reloaded, info = AutoModelForImageTextToText.from_pretrained(base if adapter else folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    if adapter:
        reloaded = PeftModel.from_pretrained(reloaded, folder)
    torch.testing.assert_close(logits(reloaded, trainer), logits(trainer.model, trainer), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("weights", "extra"), [("model", []), ("adapter_model", LORA)], ids=["full", "lora"])
def test_interrupted_run_resumes_to_the_uninterrupted_weights(
    weights, extra, tiny_model, fakeinstruct_dir, tmp_path, monkeypatch
):
    """Ctrl-C in the middle of step 2: the step finishes, checkpoint-2 is complete and reloads to the model in
    memory; the same command then resumes from it and ends at the weights of a run that was never interrupted."""
    reference = run_in_process(run_args(tiny_model, fakeinstruct_dir, tmp_path / "reference", *extra), monkeypatch)
    assert_reloads_to(tmp_path / "reference", reference, tiny_model)

    out = tmp_path / "run"
    signum, handlers = signal.SIGINT, (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    sender = SignalMidStep(STOP_STEP, signum)
    with pytest.raises(TrainingPreempted) as stopped:
        run_in_process(run_args(tiny_model, fakeinstruct_dir, out, *extra), monkeypatch, sender)
    kept = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    stopped.value.callback.restore()
    assert kept is stopped.value.callback  # the handlers outlive the stop (for a clean exit) until restored
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers
    assert sender.sent and stopped.value.step == STOP_STEP and stopped.value.signal_name == signal.Signals(signum).name
    checkpoint = out / f"checkpoint-{STOP_STEP}"
    assert stopped.value.checkpoint == str(checkpoint)
    assert incomplete_reason(checkpoint) is None and (checkpoint / f"{weights}.safetensors").is_file()
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == STOP_STEP
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [
        checkpoint.name
    ]  # written for the stop, not by save_steps
    assert not (out / f"{weights}.safetensors").exists()  # no final save after a preemption
    assert_reloads_to(checkpoint, stopped.value.trainer, tiny_model)

    resumed = run_in_process(run_args(tiny_model, fakeinstruct_dir, out, *extra), monkeypatch)
    assert resumed.state.global_step == STEPS
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [e["step"] for e in history if "loss" in e] == list(range(1, STEPS + 1))
    assert_reloads_to(out, resumed, tiny_model)
    expected = load_file(tmp_path / "reference" / f"{weights}.safetensors")
    actual = load_file(out / f"{weights}.safetensors")
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=1e-5, msg=name)
    first = load_file(checkpoint / f"{weights}.safetensors")
    assert any(not torch.equal(first[k], expected[k]) for k in expected)  # the resumed steps changed them
