"""Output formats: how a :class:`~fakeinstruct.generation.expand.Pair` becomes a dataset row.

- ``trl``: conversational ``messages`` with content blocks and an ``images`` list (TRL's VLM SFT format);
- ``prompt-completion``: ``prompt`` and ``completion`` message lists (for completion-only loss);
- ``llava``: LLaVA's ``conversations`` with ``from``/``value`` and an ``<image>`` placeholder.

Every format carries the same metadata columns, so a row can always be traced to its record and template.
"""

from __future__ import annotations

from fakeinstruct.generation.expand import Pair

FORMATS = ("trl", "prompt-completion", "llava")
IMAGE_TOKEN = "<image>"
METADATA = (
    "id",
    "task",
    "template_id",
    "chain_id",
    "image",
    "group",
    "label",
    "generator",
    "attribute",
    "positive_word",
    "negative_word",
    "answer_word",
)


def _user(text: str, with_image: bool) -> dict:
    content = [{"type": "image", "text": None}] if with_image else []
    content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def _messages(pair: Pair) -> list[dict]:
    messages = []
    for i, (question, answer) in enumerate(pair.turns):
        messages += [_user(question, i == 0), _assistant(answer)]
    return messages


def to_row(pair: Pair, fmt: str, image_ref) -> dict:
    """One dataset row. ``image_ref`` is what the images column holds (a relative path or image bytes)."""
    row = {key: getattr(pair, key) for key in METADATA}
    if fmt == "trl":
        row["messages"] = _messages(pair)
        row["images"] = [image_ref]
    elif fmt == "prompt-completion":
        messages = _messages(pair)
        row["prompt"], row["completion"] = messages[:-1], messages[-1:]
        row["images"] = [image_ref]
    elif fmt == "llava":
        conversations = []
        for i, (question, answer) in enumerate(pair.turns):
            value = f"{IMAGE_TOKEN}\n{question}" if i == 0 else question
            conversations += [{"from": "human", "value": value}, {"from": "gpt", "value": answer}]
        row["conversations"] = conversations
    else:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    return row
