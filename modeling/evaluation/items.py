"""What evaluation asks the model: one item per assistant turn of each pair of a FakeInstruct split.

A turn is asked with the reference conversation before it (teacher forcing of the history) and judged against the
reference answer. The first turn of a closed-ended pair (it has answer words) is closed: parsed and scored with
the token-probability estimator; every other turn is open-ended (ROUGE-L, CSS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modeling.scoring.probability import ClosedQuestion
from modeling.scoring.split_images import LabeledImage, labeled_image, read_rows, split_shards

COLUMNS = (
    "id",
    "task",
    "template_id",
    "chain_id",
    "label",
    "generator",
    "positive_word",
    "negative_word",
    "answer_word",
    "messages",
    "images",
)


@dataclass(frozen=True)
class EvalItem:
    key: str
    task: str
    template_id: str
    label: str
    generator: str
    image: LabeledImage
    messages: list  # the conversation up to and including the user turn being asked
    reference: str
    closed: ClosedQuestion | None = None
    answer_word: str | None = None


def _text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(block["text"] for block in content if block["type"] == "text")


def eval_items(folder: str | Path, split: str, tasks: list[str] | None = None) -> list[EvalItem]:
    identity, paths = split_shards(folder, split, formats=("trl",))
    items = []
    for path in paths:
        for row in read_rows(path, identity["file_format"], COLUMNS):
            if tasks and row["task"] not in tasks:
                continue
            image = labeled_image(Path(folder), identity, row)
            messages = row["messages"]
            for turn in range(len(messages) // 2):
                user, answer = messages[2 * turn], messages[2 * turn + 1]
                closed = None
                if turn == 0 and row["answer_word"]:
                    closed = ClosedQuestion(_text(user), row["positive_word"], row["negative_word"])
                items.append(
                    EvalItem(
                        key=f"{row['id']}#{turn}",
                        task=row["task"],
                        template_id=row["template_id"],
                        label=row["label"],
                        generator=row["generator"],
                        image=image,
                        messages=messages[: 2 * turn + 1],
                        reference=_text(answer),
                        closed=closed,
                        answer_word=row["answer_word"] if closed else None,
                    )
                )
    return items
