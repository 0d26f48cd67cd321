"""A checkpoint's chat template, rendered within the render budget of contributor templates.

transformers renders a chat template in Jinja's immutable sandbox, which keeps it from Python's internals but not from
looping for hours (nested ``range(99999)``), failing with a traceback (``range(10**9)``), building a gigabyte prompt or
calling a quadratic codec. A checkpoint is someone else's file: every render we ask of it goes through
:func:`render_chat`. While it runs, transformers compiles chat templates into
:func:`fakeinstruct.templating.engine.foreign_environment` (the extensions, filters and globals of its own environment,
with our limits on loops, sizes, output and codecs, and :data:`MAX_CHECK_SECONDS` of CPU time per render), and any
failure becomes one :class:`ChatTemplateError`. :func:`check_chat_template` renders the prompts once when a checkpoint
is loaded, so that a hostile template is refused there.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from functools import lru_cache

from fakeinstruct.templating.engine import MAX_CHECK_SECONDS, cpu_time_limit, foreign_environment


class ChatTemplateError(ValueError):
    """The checkpoint's chat template fails, or goes over the render budget."""


def user_turn(question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def assistant_turn(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


_lock = threading.Lock()
_users = 0
_theirs = None  # transformers' own compile function, while ours stands in for it


@lru_cache(maxsize=32)
def _compile(source: str):
    """``source`` compiled as transformers compiles it, in an environment that holds it to our budget.

    transformers' environment is taken from an empty template: compiling the checkpoint's own there would already fold
    its constant expressions (``'x' * 10**10``), unchecked."""
    theirs = _theirs("").environment
    env = foreign_environment(
        trim_blocks=theirs.trim_blocks,
        lstrip_blocks=theirs.lstrip_blocks,
        keep_trailing_newline=theirs.keep_trailing_newline,
        extensions=[type(extension) for extension in theirs.extensions.values()],
        filters=theirs.filters,
        tests=theirs.tests,
        globals=theirs.globals,
    )
    return env.from_string(source)


@contextlib.contextmanager
def _budgeted() -> Iterator[None]:
    """While any thread is inside, transformers compiles chat templates with :func:`_compile` (a render of another
    thread meanwhile is held to the budget too, which no real chat template notices)."""
    global _users, _theirs
    from transformers.utils import chat_template_utils

    with _lock:
        if _users == 0:
            _theirs = chat_template_utils._compile_jinja_template
            chat_template_utils._compile_jinja_template = _compile
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                chat_template_utils._compile_jinja_template = _theirs


def render_chat(processor, messages: list[dict], **kwargs) -> str:
    """``processor.apply_chat_template(messages, tokenize=False, **kwargs)`` within the render budget."""
    try:
        with _budgeted(), cpu_time_limit(2 * MAX_CHECK_SECONDS):  # the interval timer is a backstop, as at load
            return processor.apply_chat_template(messages, tokenize=False, **kwargs)
    except Exception as err:  # a hostile template can raise anything Jinja, the sandbox or our limits raise
        raise ChatTemplateError(f"the chat template failed: {type(err).__name__}: {err}") from err


def check_chat_template(processor, source: str) -> None:
    """Render a detection prompt and an answered turn once, so that a template that fails or goes over the budget is
    refused when the checkpoint (``source``) is loaded, not halfway through scoring."""
    if getattr(processor, "chat_template", None) is None:
        return
    question = user_turn("Is this image real or fake?")
    try:
        render_chat(processor, question, add_generation_prompt=True)
        render_chat(processor, [*question, assistant_turn("Fake")])
    except ChatTemplateError as err:
        raise ChatTemplateError(f"{source}: {err}") from err
