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


def detector_table(detector: dict) -> str:
    rows = [
        [name] + [fmt(m[k]) for k in ("auc", "ap", "accuracy", "f1", "ece", "brier", "nll")] + [fmt(m["n"])]
        for name, m in detector.items()
    ]
    return _table(["p_fake", "AUC", "AP", "Accuracy", "F1", "ECE", "Brier", "NLL", "Images"], rows)


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
    sections = [
        f"### Detector: image-level p_fake on the {split} split ({n_images} images)",
        detector_table(metrics["detector"]),
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
