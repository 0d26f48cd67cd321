"""Limits on what a contributor template can make a render do: loops, value sizes, output, CPU time at load.

Jinja's sandbox keeps a template from Python's internals, not from looping for hours or building a gigabyte string.
Nothing can recurse: macros, blocks, imports and recursive loops are refused at compile time (:class:`Limiter`).
All loops of a render share :data:`MAX_LOOP_ITERATIONS`. The operations that can build a value much larger than
their inputs (``*``, ``+``, ``**``, ``%``, ``~``, literals, calls, the filters that pad, repeat or collect) are
checked before they run where their size follows from their arguments, after otherwise, against
:data:`MAX_VALUE_SIZE` each and :data:`MAX_RENDER_WORK` together. Rendering is the hot path of generation, so a
check is compiled in only where a template uses the construct it guards. :mod:`fakeinstruct.templating.engine.sandbox`
applies them; :mod:`fakeinstruct.templating.engine.sizes` says how large a value or a result is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from jinja2 import TemplateSyntaxError, nodes
from jinja2 import filters as jinja_filters
from jinja2.sandbox import SecurityError
from jinja2.utils import Namespace, _PassArg, pass_context
from jinja2.visitor import NodeTransformer

from fakeinstruct.templating.engine.filters import join_and, lcfirst, sentence, titles
from fakeinstruct.templating.engine.sizes import (
    FILTER_SIZES,
    MAX_VALUE_SIZE,
    METHOD_SIZES,
    check_formats,
    joined_size,
    need,
    size,
)

# A rendered question or answer longer than this is a runaway template, not an answer.
MAX_RENDERED_CHARS = 20_000
# Loop iterations in one render, all loops together; also the longest range(). Built-in templates loop over a
# record's attributes, reasoning steps or advice.
MAX_LOOP_ITERATIONS = 10_000
# The total size of the values over _SMALL characters that one render may build.
MAX_RENDER_WORK = 16 * MAX_VALUE_SIZE
# The CPU time a load-time check lets one render of a template with loops take: the limits above bound the work
# of a render, but a loop of many iterations over large values can still take minutes.
MAX_CHECK_SECONDS = 0.5
# The largest integer '*' and '**' may make: one of 4096 bits prints as 1234 digits.
MAX_INT_BITS = 4096
# Values up to this size are not counted against the render's budget: the hot path builds only those.
_SMALL = 4096
# join and join_and read this many items before they check their size: a check per call would cost more.
_FEW = 16


# --- sizes and the per-render budget --------------------------------------------------------------------------------


def _new_budget(deadline: float | None = None) -> list:
    # [loop iterations left, work left, CPU-time deadline or None]: a list is the cheapest to make, once per render
    return [MAX_LOOP_ITERATIONS, MAX_RENDER_WORK, deadline]


def _budget(context) -> list:
    try:
        return context.fakeinstruct_budget
    except AttributeError:  # a render without loops that builds a large value, or one not made by render()
        budget = context.fakeinstruct_budget = _new_budget()
        return budget


def charge(context, size: int, what: str) -> None:
    if size > _SMALL:
        need(size, what)
        budget = _budget(context)
        budget[1] -= size
        if budget[1] < 0:
            raise SecurityError(f"the render built values of total size over the limit of {MAX_RENDER_WORK}")


def _too_many_loops() -> SecurityError:
    return SecurityError(f"more than {MAX_LOOP_ITERATIONS} loop iterations in one render")


def over_time(seconds: float = MAX_CHECK_SECONDS) -> SecurityError:
    return SecurityError(f"the render took over {seconds} s of CPU time")


def tick(context) -> None:
    """Stop a timed render past its CPU-time deadline: checked at every loop iteration, call and checked operator,
    and in foreign templates at every filter. An untimed render (generation) pays a dict lookup per call."""
    budget = context.__dict__.get("fakeinstruct_budget")
    if budget is not None and budget[2] is not None and time.thread_time() > budget[2]:
        raise over_time()


def _counted(budget: list, iterable):
    for item in iterable:
        budget[0] -= 1
        if budget[0] < 0:
            raise _too_many_loops()
        if budget[2] is not None and time.thread_time() > budget[2]:
            raise over_time()
        yield item


@pass_context
def _loop_guard(context, iterable):
    # What has a length is charged at once: no loop can end early, Jinja's break is not enabled. A timed render
    # (a load-time check) counts iteration by iteration, to stop a slow loop at its deadline.
    try:
        budget = context.fakeinstruct_budget
        if budget[2] is None:
            budget[0] -= len(iterable)
            if budget[0] >= 0:
                return iterable
            raise _too_many_loops()
    except (AttributeError, TypeError):  # not made by render(), or an iterable without a length
        budget = _budget(context)
    return _counted(budget, iterable)


@pass_context
def _built(context, value):
    charge(context, size(value), "an expression")
    return value


@pass_context
def _ticked(context, value):
    tick(context)
    return value


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_LOOP_ITERATIONS:
        raise SecurityError(f"range of {len(numbers)} numbers, over the limit of {MAX_LOOP_ITERATIONS}")
    return numbers


class _Namespace(Namespace):
    """A loop can carry values from one iteration to the next only in a namespace: each must stay bounded."""

    def __init__(*args, **kwargs):
        Namespace.__init__(*args, **kwargs)
        need(size(args[0]), "namespace()")

    def __setitem__(self, name: str, value) -> None:
        need(size(value), f"namespace attribute {name!r}")
        super().__setitem__(name, value)


# --- guarded filters (their result sizes: fakeinstruct.templating.engine.sizes) -------------------------------------


@pass_context
def _join(context, value, d="", attribute=None):
    items = value if type(value) is list else list(value)
    if len(items) > _FEW:
        need(size(items) + len(items) * len(str(d)), "join")
    if attribute is None:
        text = str(d).join(map(str, items))
    else:
        text = jinja_filters.sync_do_join(context.eval_ctx, items, d, attribute)
    if len(text) > _SMALL:
        charge(context, len(text), "join")
    return text


@pass_context
def _join_and(context, items, sep=", ", last=" and "):
    items = items if type(items) is list else list(items)
    if len(items) > _FEW:
        need(joined_size(items, max(str(sep), str(last), key=len)), "join_and")
    text = join_and(items, sep, last)
    if len(text) > _SMALL:
        charge(context, len(text), "join_and")
    return text


# filters that pad, wrap, repeat or substitute by their arguments: checked before and after they run
_SIZING_FILTERS = (*FILTER_SIZES, "format")
# filters that copy or collect their input, some expanding it by a constant (escapes, quotes): chained, they
# compound, and a collected map() or default can hold one large value many times over
_COLLECTING_FILTERS = ("escape", "e", "forceescape", "tojson", "urlencode", "string", "pprint", "xmlattr", "urlize")
_COLLECTING_FILTERS += ("list", "sort", "unique", "reverse", "groupby", "dictsort", "items")


def _guarded_filter(name: str, func):
    pass_arg = _PassArg.from_obj(func)
    first = {
        _PassArg.eval_context: lambda context: (context.eval_ctx,),
        _PassArg.environment: lambda context: (context.environment,),
        _PassArg.context: lambda context: (context,),
    }.get(pass_arg, lambda context: ())

    @pass_context
    def guarded(context, value, *args, **kwargs):
        if name == "format" and isinstance(value, str):
            check_formats(value, method=False)
        elif name in FILTER_SIZES:
            need(FILTER_SIZES[name](value, *args, **kwargs), name)
        result = func(*first(context), value, *args, **kwargs)
        if isinstance(result, Iterator):  # batch and slice yield their groups
            result = list(result)
        charge(context, size(result), name)
        return result

    guarded.__name__ = guarded.__qualname__ = name
    return guarded


SIZING_METHODS = frozenset((*METHOD_SIZES, "join", "format", "format_map"))
CONTAINER_TYPES = frozenset((list, tuple, dict, set, frozenset))


# --- compile-time restrictions --------------------------------------------------------------------------------------

_REFUSED = {
    nodes.Macro: "macros",
    nodes.CallBlock: "call blocks",
    nodes.Block: "blocks",
    nodes.Extends: "extends",
    nodes.Include: "includes",
    nodes.Import: "imports",
    nodes.FromImport: "imports",
}


_FOREIGN_ALLOWED = (nodes.Macro, nodes.CallBlock)


def _constant(node) -> bool:
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return all(_constant(item) for item in node.items)
    if isinstance(node, nodes.Dict):
        return all(_constant(pair.key) and _constant(pair.value) for pair in node.items)
    return isinstance(node, nodes.Const)


def _wrap(node, name: str):
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class Limiter(NodeTransformer):
    """Refuses what could recurse or load other templates; wraps loops and built values in their checks.

    A ``foreign`` template (a checkpoint's chat template, written for transformers' sandbox) keeps its macros, call
    blocks and recursive loops: they recurse only through calls, and each of its renders is timed, at every call and
    at every filter too.
    """

    loops = False

    def __init__(self, foreign: bool = False):
        self.foreign = foreign

    def generic_visit(self, node, *args, **kwargs):
        if type(node) in _REFUSED and not (self.foreign and type(node) in _FOREIGN_ALLOWED):
            raise TemplateSyntaxError(f"{_REFUSED[type(node)]} are not allowed in templates", node.lineno)
        return super().generic_visit(node, *args, **kwargs)

    def visit_For(self, node):
        if node.recursive and not self.foreign:
            raise TemplateSyntaxError("recursive loops are not allowed in templates", node.lineno)
        self.loops = True
        node = self.generic_visit(node)
        node.iter = _wrap(node.iter, "_loop_guard")
        return node

    def visit_Filter(self, node):
        node = self.generic_visit(node)
        # a {% filter %} block's filter has no node of its own: the block is timed by what it calls
        return _wrap(node, "_ticked") if self.foreign and node.node is not None else node

    def visit_Concat(self, node):
        return _wrap(self.generic_visit(node), "_built")

    def visit_List(self, node):
        node = self.generic_visit(node)
        return node if _constant(node) else _wrap(node, "_built")

    visit_Dict = visit_List

    def visit_Tuple(self, node):
        return self.visit_List(node) if node.ctx == "load" else self.generic_visit(node)


# --- what the sandbox calls -----------------------------------------------------------------------------------------


def install(env) -> None:
    """Add the template filters, and the guarded versions of Jinja's own that can build large values, to ``env``."""
    env.filters.update(sentence=sentence, lcfirst=lcfirst, titles=titles)
    # slice's async variant only dispatches to the sync function
    env.filters["slice"] = jinja_filters.sync_do_slice
    for name in _SIZING_FILTERS + _COLLECTING_FILTERS:
        env.filters[name] = _guarded_filter(name, env.filters[name])
    env.filters.update(join=_join, join_and=_join_and, _loop_guard=_loop_guard, _built=_built, _ticked=_ticked)
    env.globals.update(range=_range, namespace=_Namespace)
    # lipsum draws from the global random state: it would make output depend on the process
    env.globals.pop("lipsum", None)


def check_binop(context, operator: str, left, right) -> None:
    """Refuse ``left operator right`` before it runs when its result would be over a limit."""
    if operator == "%" and isinstance(left, str):
        check_formats(left, method=False)
    elif isinstance(left, int) and isinstance(right, int):
        bits = (left.bit_length() + right.bit_length()) if operator == "*" else 0
        if operator == "**" and right > 0 and abs(left) > 1:
            bits = right * max(abs(left).bit_length() - 1, 1)
        if bits > MAX_INT_BITS:
            raise SecurityError(f"'{operator}' would make an integer over {MAX_INT_BITS} bits")
    elif operator == "*":
        sequence, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(times, int) and isinstance(sequence, (str, list, tuple)):
            charge(context, size(sequence) * max(times, 0), "'*'")
    elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        charge(context, size(left) + size(right), "'+'")


def check_str_call(owner: str, name: str, args: tuple, kwargs: dict) -> tuple:
    """Refuse a str method call (``owner.name(*args)``) whose result would be over a limit; return the arguments to
    call it with (an iterable given to ``join`` is read once, here, and passed on as a list)."""
    if name == "join" and args:
        args = (list(args[0]), *args[1:])
        need(joined_size(args[0], owner), "str.join()")
    elif name.startswith("format"):
        check_formats(owner, method=True)
    else:
        need(METHOD_SIZES[name](owner, *args, **kwargs), f"str.{name}()")
    return args
