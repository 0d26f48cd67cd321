"""The sandboxed Jinja environment that renders contributor templates, and its filters."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from jinja2 import StrictUndefined
from jinja2.runtime import new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fakeinstruct.errors import TemplateError

# A rendered question or answer longer than this is a runaway template, not an answer.
MAX_RENDERED_CHARS = 20_000


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


_PLAIN_TYPES = (str, int, float, bool, tuple, type(None))


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with two shortcuts that keep its guarantees and halve its cost per pair.

    - ``obj.key`` on a context dict returns the item directly; the sandbox would first try (and fail) an
      attribute lookup, then do the same item lookup. Our context keys never shadow a dict method.
    - whether an attribute of a builtin immutable value (``str.rstrip``) is safe depends on its type and name
      only, so the sandbox's verdict is computed once per (type, name).
    """

    _verdicts: ClassVar[dict] = {}

    def getattr(self, obj, attribute):
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj, attr, value):
        if type(obj) not in _PLAIN_TYPES:
            return super().is_safe_attribute(obj, attr, value)
        key = (type(obj), attr)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = super().is_safe_attribute(obj, attr, value)
        return verdict


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    """One shared environment: compiled templates are cached by the registry, never re-parsed per pair."""
    env = _Sandbox(
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters.update(sentence=sentence, lcfirst=lcfirst, join_and=join_and, titles=titles)
    # lipsum draws from the global random state: it would make output depend on the process
    env.globals.pop("lipsum", None)
    return env


def with_globals(context: dict) -> dict:
    """``context`` plus the environment's globals, ready for :func:`render` (merge once per record)."""
    return {**environment().globals, **context}


def render(template, context: dict, *, file: str, field: str) -> str:
    """Render a compiled template; any failure becomes a :class:`TemplateError` naming the file and field.

    ``context`` must come from :func:`with_globals`: it is used as the render context as it is, without the
    per-call copy ``Template.render`` makes, which costs more than rendering a short phrasing.
    """
    try:
        ctx = new_context(template.environment, template.name, template.blocks, context, True, None, None)
        text = "".join(template.root_render_func(ctx))
    except Exception as err:  # a contributor template can raise anything Jinja or the sandbox raises
        raise TemplateError(f"render failed: {type(err).__name__}: {err}", file=file, field=field) from err
    text = text.strip()
    if len(text) > MAX_RENDERED_CHARS:
        raise TemplateError(
            f"rendered {len(text)} characters, over the limit of {MAX_RENDERED_CHARS}", file=file, field=field
        )
    return text
