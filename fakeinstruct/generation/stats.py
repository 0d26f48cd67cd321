"""Counts over generated pairs, kept per shard (in the manifest) and merged into ``stats.json``."""

from __future__ import annotations

from collections import Counter

KEYS = ("task", "template", "label", "generator", "split", "task_split")


class PairStats:
    """Pairs per task family, template, label, generator and split, and the closed-ended answer words."""

    def __init__(self):
        self.pairs = 0
        self.counters: dict[str, Counter] = {k: Counter() for k in KEYS}
        self.answer_words: dict[str, Counter] = {}

    def add_pairs(self, pairs: list, split: str) -> None:
        self.pairs += len(pairs)
        c = self.counters
        c["task"].update(p.task for p in pairs)
        c["template"].update(p.template_id.partition("#")[0] for p in pairs)
        c["label"].update(p.label for p in pairs)
        c["generator"].update(p.generator for p in pairs)
        c["split"][split] += len(pairs)
        for task, n in Counter(p.task for p in pairs).items():
            c["task_split"][f"{task}/{split}"] += n
        for (task, word), n in Counter((p.task, p.answer_word) for p in pairs if p.answer_word).items():
            self.answer_words.setdefault(task, Counter())[word] += n

    def state(self) -> dict:
        """A JSON-able, order-independent snapshot (sorted keys), for the shard manifest."""
        return {
            "pairs": self.pairs,
            "counters": {k: dict(sorted(c.items())) for k, c in self.counters.items()},
            "answer_words": {t: dict(sorted(c.items())) for t, c in sorted(self.answer_words.items())},
        }

    @classmethod
    def merged(cls, states) -> PairStats:
        total = cls()
        for state in states:
            total.pairs += state["pairs"]
            for key, counts in state["counters"].items():
                total.counters[key].update(counts)
            for task, counts in state["answer_words"].items():
                total.answer_words.setdefault(task, Counter()).update(counts)
        return total

    def summary(self) -> dict:
        out: dict = {"pairs": self.pairs}
        for key, counter in self.counters.items():
            out[f"per_{key}"] = dict(sorted(counter.items()))
        out["closed_answer_words"] = {task: dict(sorted(c.items())) for task, c in sorted(self.answer_words.items())}
        return out
