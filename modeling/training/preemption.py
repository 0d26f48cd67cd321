"""Stop training on SIGTERM/SIGINT at the end of an optimizer step, on every process, with a checkpoint of that step.

The handler only records the signal (saving from inside it could run in the middle of any bytecode); the records are
all-reduced at each step end, as one process or node may be signalled, or the nodes at different moments.
"""

from __future__ import annotations

import signal
import threading

import torch
import torch.distributed as dist
from transformers import TrainerCallback
from transformers.utils import logging

logger = logging.get_logger(__name__)
PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: run the same command again; neither a crash (1) nor a death by signal (143)


class TrainingPreempted(Exception):
    """Training stopped on a signal after writing a complete checkpoint. The ``callback``'s handlers stay installed,
    so that the process exits with :data:`PREEMPTED_EXIT_CODE` while the launcher signals it again."""

    def __init__(self, signal_name: str, step: int, checkpoint: str, trainer=None, callback=None):
        super().__init__(
            f"preempted by {signal_name}: stopped after step {step}, complete checkpoint {checkpoint}; "
            "run the same command with --resume_from_checkpoint auto (or last) to go on"
        )
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        self.trainer, self.callback = trainer, callback


class PreemptionCallback(TrainerCallback):
    """Records SIGTERM/SIGINT once training begins (before, there is nothing to save), then saves and stops at the end
    of the optimizer step during which any process got one, whatever ``save_strategy`` says; ``stopped_at`` is that
    step. A repeated SIGTERM is ignored (launcher and scheduler may each send one); a second SIGINT raises
    ``KeyboardInterrupt`` for a person who does not want to wait for the checkpoint."""

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.signals, self._previous = tuple(signals), {}
        self.received = self.stopped_at = self.signal_name = None  # the signal number, the step, the signal's name

    def install(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            logger.warning("training runs outside the main thread: SIGTERM/SIGINT will not stop it at a step boundary")
            return False
        self.received = None
        self._previous = {signum: signal.signal(signum, self._handle) for signum in self.signals}
        return True

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = self.received or signum

    def on_train_begin(self, args, state, control, **kwargs):
        self.stopped_at = None
        self.install()

    def on_step_end(self, args, state, control, **kwargs):
        received = self.received  # read once: a signal may arrive while the processes agree
        stop = received is not None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flag = torch.tensor([float(stop)], device=args.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        if not stop:
            return
        if received is not None:
            logger.warning("process %d received %s", args.process_index, signal.Signals(received).name)
        self.signal_name = signal.Signals(received).name if received is not None else "a signal to another process"
        self.stopped_at = state.global_step
        control.should_save = control.should_training_stop = True
        control.should_evaluate = False  # the grace period is for the checkpoint
        if state.is_world_process_zero:
            logger.warning("stopping after step %d (%s): writing a checkpoint", state.global_step, self.signal_name)

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stopped_at == state.global_step:  # saved at the step end already
            control.should_save = control.should_evaluate = False

    def on_train_end(self, args, state, control, **kwargs):
        # after a stop the handlers stay until the caller restores them: the launcher's SIGTERM to the processes still
        # running must not turn their clean exit into a death by signal
        if self.stopped_at is None:
            self.restore()
