"""The calibration head: temperature or Platt scaling of the token-probability logit, fitted on held-out data.

A model fine-tuned on hard labels ranks images well but is over- or under-confident; one or two numbers fitted by
minimising the negative log-likelihood on the calibration split fix that without touching the ranking:
``temperature`` gives ``z / T``, ``platt`` gives ``a * z + b``. The head is a ``PyTorchModelHubMixin`` module saved
in the checkpoint's ``calibration/`` subfolder (safetensors + its own config.json, which must not overwrite the
model's).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

logger = logging.getLogger(__name__)

METHODS = ("temperature", "platt")
SUBFOLDER = "calibration"


class CalibrationError(ValueError):
    """Calibration data that cannot be fitted (one class only, NaN scores, mismatched lengths)."""


def _check(logits, labels) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.float64))
    if z.ndim != 1 or y.ndim != 1 or len(z) != len(y):
        raise CalibrationError(
            f"expected two 1-d arrays of the same length, got shapes {tuple(z.shape)} and {tuple(y.shape)}"
        )
    if len(z) == 0:
        raise CalibrationError("no calibration data: the calibration split gave no scores")
    bad = int((~torch.isfinite(z)).sum())
    if bad:
        raise CalibrationError(f"{bad} of {len(z)} scores are NaN or infinite; check the model and its dtype")
    if not bool(((y == 0) | (y == 1)).all()):
        raise CalibrationError("labels must be 0 (real) or 1 (fake)")
    n_fake = int(y.sum())
    if n_fake in (0, len(y)):
        only = "fake" if n_fake else "real"
        raise CalibrationError(f"the calibration data has only {only} images (n={len(y)}); fitting needs both classes")
    return z, y


class CalibrationHead(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="fakescope-kit",
    tags=["calibration", "ai-generated-image-detection"],
):
    """``calibrated_logit = weight * logit + bias`` (temperature scaling keeps ``bias`` at 0, ``weight = 1/T``).

    Parameters are float64: the head is two numbers and exact reloads matter more than speed.
    """

    def __init__(self, method: str = "platt", fit_info: dict | None = None):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown calibration method {method!r}; one of {', '.join(METHODS)}")
        self.method = method
        self.fit_info = dict(fit_info or {})
        self.weight = nn.Parameter(torch.ones(1, dtype=torch.float64), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(1, dtype=torch.float64), requires_grad=False)

    @property
    def temperature(self) -> float:
        return 1.0 / float(self.weight)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.weight * logits.to(torch.float64) + self.bias

    def calibrate(self, logits) -> np.ndarray:
        """Calibrated p_fake for raw two-way logits (array-like)."""
        with torch.no_grad():
            z = self(torch.as_tensor(np.asarray(logits, dtype=np.float64)))
        return torch.sigmoid(z).numpy()

    def fit(self, logits, labels, max_iter: int = 100) -> CalibrationHead:
        """Minimise the NLL of ``labels`` (1 = fake) on ``logits``; returns ``self``."""
        z, y = _check(logits, labels)
        bias = torch.zeros(1, dtype=torch.float64, requires_grad=self.method == "platt")
        if self.method == "temperature":
            # Fitted through its log so that the temperature stays positive.
            log_scale = torch.zeros(1, dtype=torch.float64, requires_grad=True)
            params = [log_scale]

            def slope() -> torch.Tensor:
                return torch.exp(log_scale)
        else:
            # A free slope: it may even turn negative for a model whose answers are inverted.
            free = torch.ones(1, dtype=torch.float64, requires_grad=True)
            params = [free, bias]

            def slope() -> torch.Tensor:
                return free

        optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(slope() * z + bias, y)
            loss.backward()
            return loss

        before = float(nn.functional.binary_cross_entropy_with_logits(z, y))
        optimizer.step(closure)
        with torch.no_grad():
            self.weight.copy_(slope().detach())
            self.bias.copy_(bias.detach())
            after = float(nn.functional.binary_cross_entropy_with_logits(self(z), y))
        if not all(math.isfinite(v) for v in (float(self.weight), float(self.bias), after)):
            raise CalibrationError("the fit diverged (non-finite parameters); the scores may be degenerate")
        self.fit_info = {"n": len(y), "n_fake": int(y.sum()), "nll_before": before, "nll_after": after}
        logger.info(
            "calibration (%s): weight %.4f, bias %.4f; NLL on %d images %.4f -> %.4f",
            self.method,
            float(self.weight),
            float(self.bias),
            len(y),
            before,
            after,
        )
        return self

    def save_to_checkpoint(self, checkpoint: str | Path) -> Path:
        """Write the head to ``checkpoint/calibration`` atomically: the old head or the new one, never half."""
        from fakeinstruct.files import atomic_dir

        target = Path(checkpoint) / SUBFOLDER
        with atomic_dir(target) as staging:
            self.save_pretrained(staging, config={"method": self.method, "fit_info": self.fit_info})
            # the mixin writes a placeholder model card; the checkpoint's own card describes the head
            (staging / "README.md").unlink(missing_ok=True)
        return target

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path) -> CalibrationHead | None:
        """The head saved in ``checkpoint/calibration``, or None when the checkpoint has no such folder.

        A checkpoint is someone else's file: the head is read from its two files directly and refused, with one line
        naming the file, unless its config names a method and its weights are exactly a finite ``weight`` and
        ``bias`` of shape (1,) (a missing tensor would otherwise load as the default, an identity head that claims to
        be calibrated, and a NaN or infinite one would make every probability NaN, 0 or 1).
        """
        folder = Path(checkpoint) / SUBFOLDER
        if not folder.is_dir():
            return None
        config_path, weights_path = folder / "config.json", folder / "model.safetensors"
        for path in (config_path, weights_path):
            if not path.is_file():
                raise CalibrationError(f"{path} is missing: calibrate the checkpoint again (scripts/calibrate.py)")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise CalibrationError(f"{config_path}: not valid JSON ({err})") from None
        method = config.get("method") if isinstance(config, dict) else None
        if method not in METHODS:
            raise CalibrationError(f"{config_path}: method must be one of {', '.join(METHODS)}, not {method!r}")
        fit_info = config.get("fit_info", {})
        if not isinstance(fit_info, dict):
            raise CalibrationError(f"{config_path}: fit_info must be an object")
        head = cls(method, fit_info)
        values = _read_parameters(weights_path)
        if method == "temperature" and values["weight"] <= 0:
            raise CalibrationError(
                f"{weights_path}: a temperature head needs a positive weight (1/T), not {values['weight']}"
            )
        with torch.no_grad():
            head.weight.fill_(values["weight"])
            head.bias.fill_(values["bias"])
        return head


def _read_parameters(path: Path) -> dict[str, float]:
    """``weight`` and ``bias`` of a saved head: exactly these two tensors, each one finite number."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(path)
    except (OSError, SafetensorError, ValueError) as err:
        raise CalibrationError(f"{path}: not a readable safetensors file ({err})") from None
    missing = [name for name in ("weight", "bias") if name not in tensors]
    if missing:
        raise CalibrationError(f"{path}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    extra = sorted(set(tensors) - {"weight", "bias"})
    if extra:
        raise CalibrationError(f"{path}: unexpected tensors: {', '.join(extra)}")
    values = {}
    for name in ("weight", "bias"):
        tensor = tensors[name]
        if tuple(tensor.shape) != (1,):
            raise CalibrationError(f"{path}: {name} has shape {tuple(tensor.shape)}, expected (1,)")
        if not tensor.dtype.is_floating_point:
            raise CalibrationError(f"{path}: {name} is {tensor.dtype}, expected a float")
        value = float(tensor[0])
        if not math.isfinite(value):
            raise CalibrationError(f"{path}: {name} is {value}; a head holds finite numbers")
        values[name] = value
    return values
