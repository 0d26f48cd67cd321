"""Preemption-safe training: stop at a step boundary on SIGTERM/SIGINT; never resume from a half-written checkpoint.

Clusters announce preemption with SIGTERM (SLURM's grace time, spot-instance notices) and kill with SIGKILL a little
later. :class:`PreemptionCallback` installs a handler for SIGTERM and SIGINT when ``Trainer.train`` begins (before,
there is nothing to save); the handler only records the signal. At the end of each optimizer step the callback reads
the record; if any process has one, every process asks the trainer to save a checkpoint and stop, so the run ends on a
complete checkpoint and ``scripts/sft.py`` exits with :data:`PREEMPTED_EXIT_CODE`.

Under ``accelerate launch`` with several processes, the launcher (torchrun's agent) starts each worker in its own
session and forwards the signal it receives to every local worker; SLURM may signal the workers directly as well, and
the nodes of a job do not hear it at the same moment. So one process's record is not enough: the records are
all-reduced at every step end (one scalar), and all ranks stop at the same step. torchrun gives its workers
``TORCH_ELASTIC_SHUTDOWN_TIMEOUT`` seconds (30 by default) before SIGKILL: set it to the cluster's grace time.

transformers 5.23 writes ``checkpoint-N`` in place (``Trainer._save_checkpoint``: weights, optimizer, scheduler, RNG
states, then ``trainer_state.json``; no temporary folder and no rename) and ``trainer_utils.get_last_checkpoint`` takes
the highest-numbered ``checkpoint-*`` folder whatever it holds; ``rotate_checkpoints`` may delete older checkpoints
before the other processes have finished writing the new one. :class:`CompleteCheckpointsMixin` writes
:data:`COMPLETE_MARKER` last, once every process has written its part: a manifest of the folder's files and sizes,
written atomically. :func:`last_complete_checkpoint` resumes from the newest folder whose manifest matches its files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from pathlib import Path

from transformers import TrainerCallback
from transformers.utils import logging

logger = logging.get_logger(__name__)

# EX_TEMPFAIL (sysexits.h): a temporary failure, the same command may be run again; distinct from a crash (1) and
# from a death by the signal itself (-15 / 143).
PREEMPTED_EXIT_CODE = 75
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
COMPLETE_MARKER = "checkpoint_complete.json"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class TrainingPreempted(Exception):
    """Training stopped on a signal after writing a complete checkpoint.

    ``signals`` still records SIGTERM/SIGINT (so that the process can exit with :data:`PREEMPTED_EXIT_CODE` while
    the launcher signals it again); call ``signals.restore()`` to go on in the same process.
    """

    def __init__(self, signal_name: str, step: int, checkpoint: str, trainer=None, signals=None):
        super().__init__(
            f"preempted by {signal_name}: stopped after step {step}, complete checkpoint {checkpoint}; "
            "run the same command with --resume_from_checkpoint auto (or last) to go on"
        )
        self.signal_name, self.step, self.checkpoint, self.trainer = signal_name, step, checkpoint, trainer
        self.signals = signals


# ---- signals -------------------------------------------------------------------------------------------------------


class StopSignals:
    """Record SIGTERM/SIGINT instead of dying; :meth:`restore` puts the previous handlers back.

    The handler only records: logging or saving from inside it could run in the middle of any bytecode of the
    training loop. A repeated SIGTERM is ignored (launchers and schedulers may each deliver one); a second SIGINT
    raises ``KeyboardInterrupt``, for a person who presses Ctrl-C again because they do not want the checkpoint.
    """

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = tuple(signals)
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            logger.warning("training runs outside the main thread: SIGTERM/SIGINT will not stop it at a step boundary")
            return False
        self.received = None
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return True

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.received is None:
            self.received = signum


def any_process(flag: bool, device) -> bool:
    """``flag`` OR-ed over all processes (an all-reduce of one number), or ``flag`` itself without a process group."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


class PreemptionCallback(TrainerCallback):
    """Stop training at the end of the optimizer step during which any process got SIGTERM or SIGINT, with a
    checkpoint of that step (whatever ``save_strategy`` says). ``stopped_at`` is then that step."""

    def __init__(self, signals: StopSignals | None = None):
        self.signals = signals or StopSignals()
        self.stopped_at: int | None = None
        self.signal_name: str | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.stopped_at = None
        self.signals.install()

    def on_step_end(self, args, state, control, **kwargs):
        received = self.signals.received
        if not any_process(received is not None, args.device):
            return
        if received is not None:
            logger.warning("process %d received %s", args.process_index, signal.Signals(received).name)
        self.signal_name = signal.Signals(received).name if received is not None else "a signal to another process"
        self.stopped_at = state.global_step
        control.should_save = True
        control.should_training_stop = True
        control.should_evaluate = False  # the grace period is for the checkpoint
        if state.is_world_process_zero:
            logger.warning("stopping after step %d (%s): writing a checkpoint", state.global_step, self.signal_name)

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stopped_at == state.global_step:  # saved at the step end already
            control.should_save = control.should_evaluate = False

    def on_train_end(self, args, state, control, **kwargs):
        # after a stop the handlers stay until the caller restores them: the launcher sends its own SIGTERM to the
        # processes still running once the first one exits, and that must not turn a clean exit into a death by signal
        if self.stopped_at is None:
            self.signals.restore()


# ---- complete checkpoints ------------------------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_files(folder: str | Path) -> dict[str, int]:
    """Every file under ``folder`` but the marker, as its relative path -> its size in bytes."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != COMPLETE_MARKER and not path.name.startswith(f".{COMPLETE_MARKER}"):
            files[path.relative_to(folder).as_posix()] = path.stat().st_size
    return files


def mark_complete(folder: str | Path, step: int) -> Path:
    """Write the marker of a finished checkpoint: flush its files to disk, then write the manifest atomically."""
    folder = Path(folder)
    files = checkpoint_files(folder)
    for name in files:
        _fsync(folder / name)  # a marker that reaches the disk before the data would vouch for lost writes
    marker = folder / COMPLETE_MARKER
    staging = folder / f".{COMPLETE_MARKER}.tmp"
    staging.write_text(json.dumps({"global_step": step, "files": files}, indent=1) + "\n", encoding="utf-8")
    _fsync(staging)
    os.replace(staging, marker)
    _fsync(folder)
    return marker


def unmark(folder: str | Path) -> None:
    """Withdraw the marker before a checkpoint folder is written again (a re-save overwrites files in place)."""
    Path(folder, COMPLETE_MARKER).unlink(missing_ok=True)


def incomplete_reason(folder: str | Path) -> str | None:
    """Why ``folder`` is not a complete checkpoint, or None when its marker matches the files it holds."""
    folder = Path(folder)
    marker = folder / COMPLETE_MARKER
    if not marker.is_file():
        return f"no {COMPLETE_MARKER}"
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as error:
        return f"unreadable {COMPLETE_MARKER}: {error}"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} written"
    return None


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """The ``checkpoint-N`` folders of ``output_dir``, newest step first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := CHECKPOINT_RE.match(p.name)) and p.is_dir()]
    return [path for _, path in sorted(found, reverse=True)]


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete checkpoint in ``output_dir``; newer incomplete ones are skipped with a warning.

    Raises ``ValueError`` when checkpoints exist but none is complete (e.g. all written before the marker existed):
    name one explicitly to resume from it.
    """
    folders = checkpoint_folders(output_dir)
    for folder in folders:
        reason = incomplete_reason(folder)
        if reason is None:
            return str(folder)
        logger.warning("skipping incomplete checkpoint %s (%s); it is safe to delete", folder, reason)
    if folders:
        raise ValueError(
            f"{output_dir} holds {len(folders)} checkpoint folder(s) but none is complete (no valid "
            f"{COMPLETE_MARKER}); pass one explicitly with --resume_from_checkpoint PATH to resume from it anyway"
        )
    return None


class CompleteCheckpointsMixin:
    """For ``Trainer`` subclasses: mark each ``checkpoint-N`` complete once every process has written it, and only
    then rotate old checkpoints out (transformers rotates before the other processes are done)."""

    def _save_checkpoint(self, model, trial):
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

        run_dir = self._get_output_dir(trial=trial)
        folder = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save:
            unmark(folder)
        self.accelerator.wait_for_everyone()  # no process writes into the folder while it still looks complete
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            mark_complete(folder, self.state.global_step)
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )
