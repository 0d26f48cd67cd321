"""The distributions figure of a FakeInstruct folder (``stats.png``), drawn with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

from fakeinstruct.files import atomic_write


def draw(stats: dict, quality: dict, path: str | Path) -> Path:
    """Four panels: pairs per family and split, answer length per family, answer-word balance, diversity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8), dpi=100)
    ax = axes[0][0]
    families = sorted(stats["per_task"])
    bottom = [0] * len(families)
    for split in ("train", "validation", "test"):
        heights = [stats["per_task_split"].get(f"{f}/{split}", 0) for f in families]
        ax.bar(families, heights, bottom=bottom, label=split)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_title("pairs per task family and split")
    ax.legend()
    ax.tick_params(axis="x", rotation=20)

    ax = axes[0][1]
    lengths = quality["answer_words_length"]
    tasks = sorted(lengths)
    medians = [lengths[t]["p50"] for t in tasks]
    low = [lengths[t]["p50"] - lengths[t]["p5"] for t in tasks]
    high = [lengths[t]["p95"] - lengths[t]["p50"] for t in tasks]
    ax.bar(tasks, medians, yerr=[low, high], capsize=4, color="tab:green")
    ax.set_title("answer length in words (median, p5-p95)")
    ax.tick_params(axis="x", rotation=20)

    ax = axes[1][0]
    names = list(quality["balance"])
    ax.barh(names, [quality["balance"][n] for n in names], color="tab:purple")
    tolerance = quality["thresholds"]["balance_tolerance"]
    ax.axvspan(0.5 - tolerance, 0.5 + tolerance, color="grey", alpha=0.3)
    ax.set_xlim(0, 1)
    ax.set_title("share of the first answer word (target band shaded)")

    ax = axes[1][1]
    diversity = quality["diversity"]
    labels = ["questions d-2", "questions d-4", "answers d-2", "answers d-4", "repetitive answers"]
    values = [
        diversity["questions"]["distinct_2"],
        diversity["questions"]["distinct_4"],
        diversity["answers"]["distinct_2"],
        diversity["answers"]["distinct_4"],
        diversity["repetitive_answers"],
    ]
    ax.bar(labels, values, color="tab:orange")
    ax.set_ylim(0, 1)
    ax.set_title(f"diversity (sample of {quality['sampled_turns']} turns)")
    ax.tick_params(axis="x", rotation=20)

    fig.suptitle(f"FakeInstruct: {stats['pairs']} pairs")
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_write(path) as handle:
            fig.savefig(handle, format="png")
    finally:
        plt.close(fig)
    return path
