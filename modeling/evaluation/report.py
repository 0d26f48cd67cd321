"""``results.md``: the evaluation metrics as markdown tables (also pasted into the model card)."""

from __future__ import annotations


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def with_interval(metrics: dict, key: str) -> str:
    """``0.712 [0.55, 0.86]`` from a metrics dict with ``intervals`` (the plain value when it has none)."""
    interval = (metrics.get("intervals") or {}).get(key)
    if not interval:
        return fmt(metrics.get(key))
    from modeling.evaluation.intervals import Interval

    return Interval(**interval).text()


def detector_table(detector: dict, baselines: dict | None = None) -> str:
    """The detector's p_fake (raw, calibrated) and the baselines, AUC and accuracy with their 95 % intervals."""
    entries = [(f"model ({name})", m) for name, m in detector.items()]
    entries += [(f"baseline: {name}", m) for name, m in (baselines or {}).items()]
    rows = [
        [name, with_interval(m, "auc"), with_interval(m, "accuracy")]
        + [fmt(m[k]) for k in ("ap", "f1", "ece", "brier")]
        + [fmt(m["n"])]
        for name, m in entries
    ]
    return _table(["p_fake", "AUC [95% CI]", "Accuracy [95% CI]", "AP", "F1", "ECE", "Brier", "Images"], rows)


def claims(metrics: dict) -> str:
    """One sentence per baseline: does the model beat it? Only when the whole interval of the AUC difference is
    above zero; otherwise no detection is claimed over it."""
    versus = metrics.get("versus_baselines") or {}
    if not versus:
        return "No baseline was evaluated beside the model, so no claim of detection is made."
    from modeling.evaluation.intervals import Interval

    lines = []
    for name, result in versus.items():
        diff = Interval(**result["auc_difference"])
        if result["beats"]:
            lines.append(f"- The model **beats** the {name} baseline: AUC difference {diff.text()}, above zero.")
        else:
            lines.append(
                f"- The model does **not** beat the {name} baseline: AUC difference {diff.text()} "
                "(the interval reaches zero or below, or there are too few groups to tell)."
            )
    if not any(r["beats"] for r in versus.values()):
        lines.append("- No detection is claimed: the model does not do better than a simple baseline here.")
    return "\n".join(lines)


def closed_table(groups: dict, label: str) -> str:
    rows = []
    for name, parts in groups.items():
        m = parts["closed"]
        if m is None:
            continue
        tp = m["token_probability"]
        rows.append(
            [name, fmt(m["n"]), fmt(m["unparsed"]), fmt(m["accuracy"]), fmt(m["f1"]), fmt(tp["auc"]), fmt(tp["ece"])]
        )
    header = [label, "Turns", "Unparsed", "Accuracy", "F1", "AUC (token prob.)", "ECE (token prob.)"]
    return _table(header, rows)


def open_table(groups: dict, label: str) -> str:
    rows = []
    for name, parts in groups.items():
        m = parts["open"]
        if m is not None:
            rows.append([name, fmt(m["n"]), fmt(m["rouge_l"]), fmt(m.get("css"))])
    return _table([label, "Turns", "ROUGE-L", "CSS"], rows)


def markdown_table(metrics: dict) -> str:
    split = metrics["split"]
    n_images = next(iter(metrics["detector"].values()))["n"]
    groups = (metrics.get("groups") or {}).get("count")
    where = f"{n_images} images from {groups} source groups" if groups else f"{n_images} images"
    sections = [
        f"### Detector: image-level p_fake on the {split} split ({where})",
        "Intervals are 95 % cluster-bootstrap intervals that resample source groups (`source.group`: photographs or "
        "authors), not images. The baselines are logistic regressions fitted on the train split "
        "(`modeling/evaluation/baselines.py`).",
        detector_table(metrics["detector"], metrics.get("baselines")),
        claims(metrics),
        "### Closed-ended turns: generated answer parsed by keyword (unparsed = wrong); token-probability AUC/ECE",
        closed_table(metrics["by_task"], "Task"),
        "### Open-ended turns: ROUGE-L and CSS against the reference answer",
        open_table(metrics["by_task"], "Task"),
        "### By generator",
        closed_table(metrics["by_generator"], "Generator"),
        open_table(metrics["by_generator"], "Generator"),
        "### By label",
        closed_table(metrics["by_label"], "Label"),
        open_table(metrics["by_label"], "Label"),
    ]
    return "\n\n".join(sections) + "\n"
