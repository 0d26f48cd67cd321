"""Reliability diagram and ROC plot for the detector, written as PNG files atomically.

matplotlib is imported inside the functions so that importing this module stays cheap for code that never plots.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fakeinstruct.files import atomic_write
from modeling.evaluation.metrics import (
    expected_calibration_error,
    reliability_bins,
    roc_auc,
    roc_curve,
    validate_inputs,
)

__all__ = ["reliability_diagram", "roc_plot"]


def _validated_curves(y_true: Any, curves: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must map at least one name to a p_fake array, e.g. {'raw': p_raw}")
    checked = {}
    for name, p_fake in curves.items():
        try:
            y, checked[str(name)] = validate_inputs(y_true, p_fake)
        except ValueError as err:
            raise ValueError(f"curve {name!r}: {err}") from None
    return y, checked


def _new_figure(figsize: tuple[float, float]) -> Any:
    # A bare Figure on an Agg canvas: no pyplot global state, no GUI backend, safe to call from worker threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    return path


def reliability_diagram(
    y_true: Any,
    curves: Mapping[str, Any],
    path: str | Path,
    n_bins: int = 15,
    title: str = "Reliability diagram",
) -> Path:
    """Accuracy vs. mean confidence per bin for each named score, ECE in the legend, confidence histogram below."""
    y, checked = _validated_curves(y_true, curves)
    stats = {
        name: (reliability_bins(y, p, n_bins=n_bins), expected_calibration_error(y, p, n_bins=n_bins))
        for name, p in checked.items()
    }
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    left = float(edges[edges <= 0.5].max())  # top-label confidence is >= 0.5: show only the bins it can reach

    fig = _new_figure((6.0, 7.0))
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1))
    ax = fig.add_subplot(grid[0])
    hist = fig.add_subplot(grid[1], sharex=ax)
    ax.plot([left, 1.0], [left, 1.0], linestyle="--", color="0.5", label="perfectly calibrated")
    for name, (bins, ece) in stats.items():
        line = ax.plot(bins.confidence, bins.accuracy, marker="o", label=f"{name} (ECE {ece:.3f})")[0]
        conf = np.maximum(checked[name], 1.0 - checked[name])
        hist.hist(conf, bins=edges, histtype="step", color=line.get_color(), linewidth=1.5)
    ax.set(xlim=(left, 1.0), ylim=(0.0, 1.02), ylabel="accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.tick_params(labelbottom=False)
    hist.set(xlabel="confidence max(p, 1-p)", ylabel="count")
    hist.grid(alpha=0.3)
    return _save(fig, path)


def roc_plot(y_true: Any, curves: Mapping[str, Any], path: str | Path, title: str = "ROC curve") -> Path:
    """ROC curve for each named score with its AUC in the legend."""
    y, checked = _validated_curves(y_true, curves)
    stats = {}
    for name, p in checked.items():
        try:
            stats[name] = (roc_curve(y, p), roc_auc(y, p))
        except ValueError as err:
            raise ValueError(f"curve {name!r}: {err}") from None

    fig = _new_figure((5.5, 5.5))
    ax = fig.add_subplot()
    ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="0.5", label="chance")
    for name, ((fpr, tpr, _), auc) in stats.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.set(xlim=(0.0, 1.0), ylim=(0.0, 1.02), xlabel="false positive rate (real called fake)", title=title)
    ax.set_ylabel("true positive rate (fake caught)")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)
