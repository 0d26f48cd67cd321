"""The fixed rule from per-attribute verdicts to the label the evidence points to.

A record's conclusion follows from its verdicts by this rule, never from the label: the verdicts point to ``fake``
when the severities of the anomalous attributes add up to at least :data:`FAKE_AT` (an anomalous attribute without
a severity counts :data:`UNSTATED_SEVERITY`), else to ``real``. So one clear trace, or two moderate ones, point to
a generator; one faint oddity (a saturated flower, a little smoothing) does not. When the rule's answer differs from
the label (which comes from provenance), the record's evidence does not decide its label and it says so.
"""

from __future__ import annotations

from collections.abc import Iterable

FAKE_AT = 0.5
UNSTATED_SEVERITY = 0.5


def _get(attribute, key: str):
    return attribute.get(key) if isinstance(attribute, dict) else getattr(attribute, key)


def evidence_weight(attributes: Iterable) -> float:
    """The summed severity of the anomalous attributes (records' attribute objects or their JSON)."""
    total = 0.0
    for attribute in attributes:
        if _get(attribute, "verdict") == "anomalous":
            severity = _get(attribute, "severity")
            total += UNSTATED_SEVERITY if severity is None else severity
    return total


def evidence_label(attributes: Iterable) -> str:
    """``"fake"`` or ``"real"``: where the verdicts point by the fixed rule."""
    return "fake" if evidence_weight(attributes) >= FAKE_AT else "real"


def evidence_decides(attributes: Iterable, label: str) -> bool:
    """Whether the verdicts point to ``label``."""
    return evidence_label(attributes) == label
