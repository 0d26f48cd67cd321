"""``fakeinstruct stats``: is the generated data any good? Balance, diversity, duplicates and leakage.

One streaming pass over the shards. Counts, balance, lengths, duplicates and leakage are exact; n-gram diversity
and 8-gram repetition are measured on a deterministic, evenly spread sample of answers (``sample_size``),
because their memory grows with the text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson

from fakeinstruct.folder import FakeInstructFolder

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Thresholds:
    """What the data must meet; stated in the dataset card. The bundled sample must pass them.

    The diversity limits are set to tell boilerplate from annotation: on the bundled sample, the records with
    machine-drafted evidence only (fixed sentence frames around measured numbers) give answers distinct-2 0.028,
    distinct-4 0.059 and 73 % repetitive answers, and fail; the reviewed records, whose evidence says what is
    seen in each image, give 0.053, 0.145 and 41 %, and pass. Distinct-n falls as a corpus grows, so the
    n-gram figures are always taken on a sample of the same size (``sample_size`` turns).
    """

    balance_tolerance: float = 0.01  # yes/no and real/fake answer shares within 50 +- 1 %
    min_distinct_2_answers: float = 0.04
    min_distinct_4_answers: float = 0.10
    max_repetitive_answers: float = 0.50  # answers sharing an 8-gram with more than 1 % of all answers
    min_median_explanation_words: int = 40


BALANCED_PAIRS = (("Yes", "No"), ("Fake", "Real"))
# Closed-ended families. A conversation opens with one detection template drawn per record, so its first
# answer word is a sample of detection's, not a balanced set of its own.
BALANCED_FAMILIES = ("detection", "attribute")


def _rows(folder: FakeInstructFolder) -> Iterator[tuple[str, dict]]:
    """(split, row) for every row, reading only the columns the report needs."""
    for split, paths in folder.shards().items():
        for path in paths:
            if path.suffix == ".jsonl":
                with path.open("rb") as handle:
                    for line in handle:
                        yield split, orjson.loads(line)
            else:
                import pyarrow.parquet as pq

                file = pq.ParquetFile(path)
                wanted = [c for c in file.schema_arrow.names if c not in ("images",)]
                for batch in file.iter_batches(columns=wanted, batch_size=4096):
                    for row in batch.to_pylist():
                        yield split, row


def _turns(row: dict) -> list[tuple[str, str]]:
    """The (question, answer) turns of a row, whatever its format."""
    if "conversations" in row:
        values = [turn["value"] for turn in row["conversations"]]
        values[0] = values[0].removeprefix("<image>\n")
    else:
        messages = row.get("messages") or (row["prompt"] + row["completion"])
        values = [" ".join(b["text"] for b in m["content"] if b["text"]) for m in messages]
    return list(zip(values[0::2], values[1::2], strict=True))


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def _distinct(texts: list[list[str]], n: int) -> float:
    grams = [g for words in texts for g in _ngrams(words, n)]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def _repetitive_share(answers: list[list[str]]) -> float:
    """Share of answers that contain an 8-gram found in more than 1 % of the answers."""
    per_answer = [{hash(g) for g in _ngrams(words, 8)} for words in answers]
    frequency = Counter(h for grams in per_answer for h in grams)
    limit = 0.01 * len(answers)
    hit = sum(1 for grams in per_answer if any(frequency[h] > limit for h in grams))
    return round(hit / len(answers), 4) if answers else 0.0


def _percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    array = np.asarray(values)
    return {f"p{q}": float(np.percentile(array, q)) for q in (5, 25, 50, 75, 95)}


def measure(folder, sample_size: int = 20_000, thresholds: Thresholds = Thresholds()) -> dict:
    """The quality report of a ``fakeinstruct generate`` output folder (a path or a :class:`FakeInstructFolder`)."""
    if not isinstance(folder, FakeInstructFolder):
        folder = FakeInstructFolder.open(folder)
    rows_total = sum(e["rows"] for e in folder.manifest()["shards"].values())
    stride = max(1, rows_total // sample_size)
    answer_words: dict[str, Counter] = {}
    lengths: dict[str, list[int]] = {}
    image_splits: dict[str, set] = {}
    group_splits: dict[str, set] = {}
    keys = np.empty(rows_total, dtype=np.uint64)
    sample_q: list[list[str]] = []
    sample_a: list[list[str]] = []
    sample_task: list[str] = []
    for index, (split, row) in enumerate(_rows(folder)):
        turns = _turns(row)
        task = row["task"]
        if row["answer_word"]:
            answer_words.setdefault(task, Counter())[row["answer_word"]] += 1
        for _, answer in turns:
            lengths.setdefault(task, []).append(len(answer.split()))
        image = row["image_path"] if "image_path" in row else row["image"]  # llava names it as LLaVA does
        image_splits.setdefault(image, set()).add(split)
        group_splits.setdefault(row["group"], set()).add(split)
        digest = hashlib.blake2b(json.dumps([image, turns]).encode(), digest_size=8).digest()
        keys[index] = int.from_bytes(digest, "little")
        if index % stride == 0:
            for question, answer in turns:
                sample_q.append(_WORD.findall(question.lower()))
                sample_a.append(_WORD.findall(answer.lower()))
                sample_task.append(task)
    keys.sort()
    duplicates = int(np.count_nonzero(keys[1:] == keys[:-1])) if rows_total > 1 else 0

    balance = {}
    for task, counts in sorted(answer_words.items()):
        if task not in BALANCED_FAMILIES:
            continue
        for positive, negative in BALANCED_PAIRS:
            n = counts[positive] + counts[negative]
            if n:
                balance[f"{task}:{positive}/{negative}"] = round(counts[positive] / n, 4)
    report = {
        "pairs": rows_total,
        "sampled_turns": len(sample_a),
        "balance": balance,
        "answer_words": {t: dict(sorted(c.items())) for t, c in sorted(answer_words.items())},
        "diversity": {
            "questions": {"distinct_2": _distinct(sample_q, 2), "distinct_4": _distinct(sample_q, 4)},
            "answers": {"distinct_2": _distinct(sample_a, 2), "distinct_4": _distinct(sample_a, 4)},
            "repetitive_answers": _repetitive_share(sample_a),
            # within one family, across images: do explanations differ from image to image?
            "answers_distinct_4_per_family": {
                task: _distinct([a for a, t in zip(sample_a, sample_task, strict=True) if t == task], 4)
                for task in sorted(set(sample_task))
            },
        },
        "answer_words_length": {task: _percentiles(v) for task, v in sorted(lengths.items())},
        "exact_duplicates_left": duplicates,
        "leakage": {
            "images_in_several_splits": sum(1 for s in image_splits.values() if len(s) > 1),
            "groups_in_several_splits": sum(1 for s in group_splits.values() if len(s) > 1),
        },
    }
    report["checks"] = _checks(report, thresholds)
    report["thresholds"] = thresholds.__dict__
    return report


def _checks(report: dict, t: Thresholds) -> dict[str, bool]:
    answers = report["diversity"]["answers"]
    explanation = report["answer_words_length"].get("explanation", {})
    return {
        "balance": all(abs(share - 0.5) <= t.balance_tolerance for share in report["balance"].values()),
        "distinct_2": answers["distinct_2"] >= t.min_distinct_2_answers,
        "distinct_4": answers["distinct_4"] >= t.min_distinct_4_answers,
        "repetition": report["diversity"]["repetitive_answers"] <= t.max_repetitive_answers,
        "explanation_length": explanation.get("p50", 0) >= t.min_median_explanation_words,
        "no_duplicates": report["exact_duplicates_left"] == 0,
        "no_leakage": not any(report["leakage"].values()),
    }
