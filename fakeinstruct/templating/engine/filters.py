"""The filters templates use besides Jinja's own: plain functions of their arguments."""

from __future__ import annotations


def sentence(text: str) -> str:
    """Capitalise the first letter and make sure the text ends with sentence punctuation."""
    text = str(text).strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def lcfirst(text: str) -> str:
    """Lower-case the first letter unless the first word is an acronym or mixed case ("JPEG", "AI-made")."""
    text = str(text)
    if not text or (len(text) > 1 and text[1].isupper()):
        return text
    return text[0].lower() + text[1:]


def join_and(items, sep: str = ", ", last: str = " and ") -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return sep.join(items[:-1]) + last + items[-1]


def titles(attributes) -> list[str]:
    return [a["title"] for a in attributes]
