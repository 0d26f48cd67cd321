"""95 % intervals that resample source groups (photographs, authors), not images.

Crops of one photograph, or photographs of one author, are not independent: an interval that resamples images as if
they were claims far more certainty than the data holds. :func:`grouped_bootstrap` draws whole groups with
replacement (a cluster bootstrap) and takes the percentile interval of the metric over the resamples; a resample in
which the metric is undefined (one class only, for AUC) is drawn again, and the share of such draws is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A metric with its percentile interval over group resamples."""

    value: float | None
    low: float | None
    high: float | None
    groups: int
    resamples: int
    level: float = LEVEL

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self, digits: int = 3) -> str:
        """``0.712 [0.55, 0.86]``, or ``n/a`` when undefined."""
        if self.value is None:
            return "n/a"
        if self.low is None:
            return f"{self.value:.{digits}f} [n/a: {self.groups} group(s)]"
        return f"{self.value:.{digits}f} [{self.low:.{max(digits - 1, 2)}f}, {self.high:.{max(digits - 1, 2)}f}]"


def _defined(metric: Callable, y: np.ndarray, scores: np.ndarray) -> float | None:
    try:
        value = metric(y, scores)
    except ValueError:  # e.g. AUC of one class
        return None
    return None if value is None or not np.isfinite(value) else float(value)


def grouped_bootstrap(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y: Sequence,
    scores: Sequence,
    groups: Sequence[str],
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """``metric(y, scores)`` and its ``level`` interval from ``resamples`` cluster-bootstrap draws over ``groups``.

    With fewer than two groups there is nothing to resample: the interval is left undefined rather than made up.
    """
    y, scores = np.asarray(y), np.asarray(scores)
    names, index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    if not len(y) == len(scores) == len(index):
        raise ValueError(f"y, scores and groups differ in length: {len(y)}, {len(scores)}, {len(index)}")
    value = _defined(metric, y, scores)
    if value is None or len(names) < 2:
        return Interval(value, None, None, len(names), 0, level)
    members = [np.flatnonzero(index == g) for g in range(len(names))]
    rng = np.random.default_rng(seed)
    values: list[float] = []
    attempts = 0
    while len(values) < resamples and attempts < 20 * resamples:
        attempts += 1
        drawn = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        v = _defined(metric, y[drawn], scores[drawn])
        if v is not None:
            values.append(v)
    if len(values) < resamples // 2:  # almost every resample is degenerate: no honest interval
        return Interval(value, None, None, len(names), len(values), level)
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return Interval(value, float(low), float(high), len(names), len(values), level)


def image_bootstrap(metric, y, scores, **kwargs) -> Interval:
    """The same with every image its own group: what an interval over images would claim (for comparison only)."""
    return grouped_bootstrap(metric, y, scores, [str(i) for i in range(len(y))], **kwargs)
