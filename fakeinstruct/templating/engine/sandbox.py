"""The sandboxed Jinja environments that render contributor templates and foreign ones, with their limits.

Jinja's immutable sandbox keeps a template from Python's internals; :mod:`.limits` keeps it from looping for hours,
building a gigabyte string or calling a codec. A template that breaks a limit fails in milliseconds, with a
:class:`TemplateError` naming its file and field, when it is rendered on the probe records at load time: every such
render is timed (:data:`MAX_CHECK_SECONDS` of CPU), with loops or without. Output is capped at
:data:`MAX_RENDERED_CHARS`, measured as it is produced where there are loops.

:func:`foreign_environment` gives the same budget to a template written for another sandbox (a checkpoint's chat
template, rendered by transformers): every one of its renders is timed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from functools import lru_cache
from itertools import islice
from typing import ClassVar

from jinja2 import StrictUndefined, Template
from jinja2.runtime import LoopContext, new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from fakeinstruct.errors import TemplateError
from fakeinstruct.templating.engine.limits import (
    CONTAINER_TYPES,
    MAX_CHECK_SECONDS,
    MAX_LOOP_ITERATIONS,
    MAX_RENDER_WORK,
    MAX_RENDERED_CHARS,
    MAX_VALUE_SIZE,
    SIZING_METHODS,
    Limiter,
    charge,
    check_binop,
    check_str_call,
    install,
    over_time,
    size,
    tick,
)

# A codec may be written in Python (punycode is quadratic: a few thousand characters take seconds), and no phrasing
# needs bytes: encoding and decoding are refused.
_CODEC_METHODS = frozenset(("encode", "decode"))


class _Template(Template):
    loops = False  # True for a template with a {% for %}: render() measures its output as it is produced


_PLAIN_TYPES = (str, int, float, bool, tuple, type(None))
# Types whose attributes' safety depends on the type and the name only: builtin immutable values, and the loop
# variable (``loop.index``, ``loop.cycle``), a fixed Jinja class read several times per loop iteration.
_VERDICT_TYPES = frozenset((*_PLAIN_TYPES, LoopContext))


class _Budgeted(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the limits of :mod:`.limits`: operators and calls checked before they build a
    large value, loops counted, codecs refused, and the CPU-time deadline of a timed render checked at every call."""

    # an intercepted operator is also never folded into a constant at compile time, before any check could run
    intercepted_binops = frozenset(("+", "*", "**", "%"))
    foreign = False  # see Limiter

    def is_safe_attribute(self, obj, attr, value):
        if attr in _CODEC_METHODS and isinstance(obj, (str, bytes, bytearray)):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def _parse(self, source, name, filename):
        return Limiter(self.foreign).visit(super()._parse(source, name, filename))

    def call_binop(self, context, operator, left, right):
        check_binop(context, operator, left, right)
        result = self.binop_table[operator](left, right)
        if operator == "%" and isinstance(result, str):
            charge(context, len(result), "'%'")
        return result

    def call(__self, __context, __obj, *args, **kwargs):
        tick(__context)
        if getattr(__obj, "__name__", None) not in SIZING_METHODS:
            # SandboxedEnvironment.call, inlined: a method call is on the hot path, and a layer costs a third of it
            if not __self.is_safe_callable(__obj):
                raise SecurityError(f"{__obj!r} is not safely callable")
            result = __context.call(__obj, *args, **kwargs)
            if type(result) in CONTAINER_TYPES:  # dict(), dict.fromkeys(), str.split(): collected, unchecked
                charge(__context, size(result), "a call")
            return result
        # str.format comes wrapped by the sandbox: the string is the wrapped method's owner
        owner, name = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None), __obj.__name__
        if isinstance(owner, str):
            args = check_str_call(owner, name, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        charge(__context, size(result), f"{name}()")
        return result


class _Sandbox(_Budgeted):
    """The contributor templates' sandbox, with two shortcuts that keep its guarantees and halve its cost per pair.

    - ``obj.key`` on a context dict returns the item directly; the sandbox would first try (and fail) an
      attribute lookup, then do the same item lookup. Our context keys never shadow a dict method. Likewise
      ``loop.last`` once the sandbox has judged ``last`` safe on the loop variable.
    - whether an attribute of a builtin immutable value (``str.rstrip``) or of the loop variable is safe depends
      on its type and name only, so the sandbox's verdict is computed once per (type, name).
    """

    _verdicts: ClassVar[dict] = {}
    template_class = _Template

    def getattr(self, obj, attribute):
        kind = type(obj)
        if kind is dict and attribute in obj:
            return obj[attribute]
        if kind is LoopContext and self._verdicts.get((kind, attribute)):
            # a name the sandbox has already judged safe on the loop variable: every one is a property or method
            # of the class, so it exists and is never str.format, the two cases the full lookup is for
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj, attr, value):
        if type(obj) not in _VERDICT_TYPES:
            return super().is_safe_attribute(obj, attr, value)
        key = (type(obj), attr)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = super().is_safe_attribute(obj, attr, value)
        return verdict

    def from_string(self, source, globals=None, template_class=None):
        if not isinstance(source, str):
            raise TypeError("templates are compiled from their source, where the limits are applied")
        limiter = Limiter()
        ast = limiter.visit(ImmutableSandboxedEnvironment._parse(self, source, None, None))
        template = super().from_string(ast, globals, template_class)
        template.loops = limiter.loops
        return template


class _TimedTemplate(Template):
    """Every render is timed: a foreign template's renders are not load-time checks that a later run repeats."""

    def new_context(self, vars=None, shared=False, locals=None):
        context = super().new_context(vars, shared, locals)
        context.fakeinstruct_budget = [MAX_LOOP_ITERATIONS, MAX_RENDER_WORK, time.thread_time() + MAX_CHECK_SECONDS]
        return context


def _bounded_concat(pieces) -> str:
    out, total = [], 0
    for piece in pieces:
        total += len(piece)
        if total > MAX_VALUE_SIZE:
            raise SecurityError(f"rendered over {MAX_VALUE_SIZE} characters")
        out.append(piece)
    return "".join(out)


class _Foreign(_Budgeted):
    foreign = True
    template_class = _TimedTemplate
    concat = staticmethod(_bounded_concat)


def foreign_environment(*, filters=None, tests=None, globals=None, **options) -> ImmutableSandboxedEnvironment:
    """A new sandbox for a template written for another Jinja sandbox (``options``, ``filters``, ``tests`` and
    ``globals`` as that one has them), with the render budget of contributor templates: loops, value sizes and
    output bounded, codecs refused, and every render timed (:data:`MAX_CHECK_SECONDS` of CPU, checked at every loop
    iteration, call, filter and checked operator). Macros, call blocks and recursive loops are kept. The filters that
    build large values are wrapped in their checks, and ``range`` is ours."""
    env = _Foreign(**options)
    env.filters.update(filters or {})
    env.tests.update(tests or {})
    install(env)
    env.globals.update({k: v for k, v in (globals or {}).items() if k != "range"})
    return env


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
    install(env)
    return env


def with_globals(context: dict) -> dict:
    """``context`` plus the environment's globals, ready for :func:`render` (merge once per record)."""
    return {**environment().globals, **context}


_END = object()


def _bounded_rest(text: str, pieces) -> str:
    """The output of a template with loops past its first pieces, failing once it certainly exceeds the limit."""
    out, size, check_at = [text], len(text), MAX_RENDERED_CHARS
    for piece in pieces:
        out.append(piece)
        size += len(piece)
        if size > check_at:
            if len("".join(out).strip()) > MAX_RENDERED_CHARS:
                raise SecurityError(f"rendered over {MAX_RENDERED_CHARS} characters")
            check_at = 2 * size
    return "".join(out)


_alarm = threading.local()


def _on_alarm(signum, frame):
    if getattr(_alarm, "armed", False):
        _alarm.armed = False
        raise over_time()


@contextlib.contextmanager
def cpu_time_limit(seconds: float = MAX_CHECK_SECONDS) -> Iterator[None]:
    """Interrupt the block with a SecurityError after ``seconds`` of CPU time, whatever it does between the checks of
    the limits (a long chain of filters): an interval timer, in the main thread only (elsewhere the limits' own
    deadline checks apply)."""
    main = threading.current_thread() is threading.main_thread()
    if not main or not hasattr(signal, "setitimer") or getattr(_alarm, "armed", False):  # or already limited
        yield
        return
    previous = signal.signal(signal.SIGVTALRM, _on_alarm)
    _alarm.armed = True
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        _alarm.armed = False
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, signal.SIG_DFL if previous is None else previous)  # None: not set from Python


def render(template, context: dict, *, file: str, field: str, timed: bool = False) -> str:
    """Render a compiled template; any failure becomes a :class:`TemplateError` naming the file and field.

    ``timed`` is for load-time checks: the render stops after :data:`MAX_CHECK_SECONDS` of CPU time, with loops or
    without. Generation renders untimed, so that its output never depends on the machine's speed.

    ``context`` must come from :func:`with_globals`: it is used as the render context as it is, without the
    per-call copy ``Template.render`` makes, which costs more than rendering a short phrasing.
    """
    try:
        ctx = new_context(template.environment, template.name, template.blocks, context, True, None, None)
        if timed:
            ctx.fakeinstruct_budget = [MAX_LOOP_ITERATIONS, MAX_RENDER_WORK, time.thread_time() + MAX_CHECK_SECONDS]
            # a backstop past the checks' own deadline, for work between two checks (a chain of filters); it counts
            # the CPU time of every thread of the process, hence the margin
            with cpu_time_limit(2 * MAX_CHECK_SECONDS):
                text = _render(template, ctx)
        elif template.loops:
            ctx.fakeinstruct_budget = [MAX_LOOP_ITERATIONS, MAX_RENDER_WORK, None]
            text = _render(template, ctx)
        else:
            text = "".join(template.root_render_func(ctx))
    except Exception as err:  # a contributor template can raise anything Jinja or the sandbox raises
        raise TemplateError(f"render failed: {type(err).__name__}: {err}", file=file, field=field) from err
    text = text.strip()
    if len(text) > MAX_RENDERED_CHARS:
        raise TemplateError(
            f"rendered {len(text)} characters, over the limit of {MAX_RENDERED_CHARS}", file=file, field=field
        )
    return text


def _render(template, ctx) -> str:
    """The output of a template with a budget, measured as it is produced."""
    # the first 64 pieces, the whole output of the usual phrasing, are joined unchecked: a check per piece would cost
    # more than the render of a short phrasing
    pieces = template.root_render_func(ctx)
    text = "".join(islice(pieces, 64))
    piece = next(pieces, _END)
    if piece is not _END:
        text = _bounded_rest(text + piece, pieces)
    return text
