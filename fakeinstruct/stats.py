"""Counts over generated pairs, accumulated row by row (flat memory), summarised into ``stats.json``."""

from __future__ import annotations

from collections import Counter


class PairStats:
    """Pairs per task family, template, label, generator and split, and the closed-ended answer words."""

    KEYS = ("task", "template", "label", "generator", "split", "task_split")

    def __init__(self):
        self.pairs = 0
        self.counters = {k: Counter() for k in self.KEYS}
        self.answer_words: dict[str, Counter] = {}

    def add(self, row: dict, split: str) -> None:
        self.pairs += 1
        c = self.counters
        c["task"][row["task"]] += 1
        c["template"][row["template_id"].split("#", 1)[0]] += 1
        c["label"][row["label"]] += 1
        c["generator"][row["generator"]] += 1
        c["split"][split] += 1
        c["task_split"][f"{row['task']}/{split}"] += 1
        if row.get("answer_word"):
            self.answer_words.setdefault(row["task"], Counter())[row["answer_word"]] += 1

    def summary(self) -> dict:
        out: dict = {"pairs": self.pairs}
        for key, counter in self.counters.items():
            out[f"per_{key}"] = dict(sorted(counter.items()))
        out["closed_answer_words"] = {task: dict(sorted(c.items())) for task, c in sorted(self.answer_words.items())}
        return out
