"""Limits on what a contributor template can make a render do: loops, value sizes, output, CPU time at load.

Jinja's sandbox keeps a template from Python's internals, not from looping for hours or building a gigabyte string.
Nothing can recurse: macros, blocks, imports and recursive loops are refused at compile time (:class:`Limiter`).
All loops of a render share :data:`MAX_LOOP_ITERATIONS`. The operations that can build a value much larger than
their inputs (``*``, ``+``, ``**``, ``%``, ``~``, literals, calls, the filters that pad, repeat or collect) are
checked before they run where their size follows from their arguments, after otherwise, against
:data:`MAX_VALUE_SIZE` each and :data:`MAX_RENDER_WORK` together. Rendering is the hot path of generation, so a
check is compiled in only where a template uses the construct it guards. :mod:`fakeinstruct.templating.engine.sandbox` applies them.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Collection, Iterator, Mapping

from jinja2 import TemplateSyntaxError, Undefined, nodes
from jinja2 import filters as jinja_filters
from jinja2.sandbox import SecurityError
from jinja2.utils import Namespace, _PassArg, pass_context
from jinja2.visitor import NodeTransformer

from fakeinstruct.templating.engine.filters import join_and, lcfirst, sentence, titles

# A rendered question or answer longer than this is a runaway template, not an answer.
MAX_RENDERED_CHARS = 20_000
# Loop iterations in one render, all loops together; also the longest range(). Built-in templates loop over a
# record's attributes, reasoning steps or advice.
MAX_LOOP_ITERATIONS = 10_000
# The largest value a render may build: characters of a string, items of a container counted as printing it would
# expand them. A record line is at most 1 MiB, so whatever is built from one record's text fits.
MAX_VALUE_SIZE = 1 << 20
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


# --- sizes and the per-render budget ---------------------------------------------------------------------------


def size(value, limit: int = MAX_VALUE_SIZE, _seen: dict | None = None) -> int:
    """Characters of a string; items of a container plus their sizes. A container met again is counted from memory
    and counting stops past ``limit``: a list holding one list many times over costs a step per distinct list."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Namespace):
        value = value._Namespace__attrs
    elif isinstance(value, Undefined) or not isinstance(value, Collection):
        return 1
    seen = {} if _seen is None else _seen
    if id(value) in seen:
        return seen[id(value)]
    total = len(value)
    for item in (*value.keys(), *value.values()) if isinstance(value, Mapping) else value:
        total += len(item) if isinstance(item, str) else size(item, limit - total, seen)
        if total > limit:
            break
    seen[id(value)] = total
    return total


def _need(size: int, what: str) -> None:
    if size > MAX_VALUE_SIZE:
        raise SecurityError(f"{what} would build a value of size {size}, over the limit of {MAX_VALUE_SIZE}")


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
        _need(size, what)
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
        _need(size(args[0]), "namespace()")

    def __setitem__(self, name: str, value) -> None:
        _need(size(value), f"namespace attribute {name!r}")
        super().__setitem__(name, value)


# --- checks before the operations that take a size ------------------------------------------------------------

_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?[a-zA-Z%]")


def _check_width(number: str, what: str) -> None:
    # the digits are counted before int() reads them: int() refuses over 4300 digits, with its own error
    if number == "*" or len(number) > 7 or int(number) > MAX_VALUE_SIZE:
        raise SecurityError(f"{what} of {number[:20]} is not allowed (at most {MAX_VALUE_SIZE})")


def _check_formats(text: str, method: bool) -> None:
    """Widths and precisions in a ``%`` format, or in a ``str.format`` one when ``method``."""
    if not method:
        for match in _PRINTF.finditer(text):
            for number in filter(None, match.groups()):
                _check_width(number, "a % format width")
        return
    for _, _, spec, _ in string.Formatter().parse(text):
        if spec and "{" in spec:
            raise SecurityError("nested format fields are not allowed in templates")
        for number in re.findall(r"\d+", spec or ""):
            _check_width(number, "a format width")


def _replaced_size(text: str, old, new, count) -> int:
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def _wrapped_size(text: str, width: int, wrap: str) -> int:
    # a greedy wrap fills each line but the last past half its width
    return len(text) + (2 * len(text) // max(width, 1) + text.count("\n") + 2) * len(wrap)


def _texts(table) -> list[str]:
    values = table.values() if isinstance(table, Mapping) else table if isinstance(table, Collection) else ()
    return [v for v in values if isinstance(v, str)]


# The result size of the filters and str methods that pad, wrap, repeat or substitute, from their arguments (named
# as Jinja and Python name them); a wrong argument raises the TypeError the operation itself would.
_FILTER_SIZES = {
    "center": lambda value, width=80: max(len(str(value)), width),
    "indent": lambda s, width=4, first=False, blank=False: (
        len(str(s)) + (str(s).count("\n") + 1) * (len(width) if isinstance(width, str) else width)
    ),
    "replace": lambda s, old, new, count=None: _replaced_size(str(s), str(old), str(new), count),
    "wordwrap": lambda s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True: _wrapped_size(
        str(s), width, wrapstring or "\n"
    ),
    "batch": lambda value, linecount, fill_with=None: linecount * (0 if fill_with is None else size(fill_with)),
    "slice": lambda value, slices, fill_with=None: slices * (1 if fill_with is None else 1 + size(fill_with)),
}
_METHOD_SIZES = {
    "center": lambda s, width, fillchar=" ": max(len(s), width),
    "ljust": lambda s, width, fillchar=" ": max(len(s), width),
    "rjust": lambda s, width, fillchar=" ": max(len(s), width),
    "zfill": lambda s, width: max(len(s), width),
    "expandtabs": lambda s, tabsize=8: len(s) + s.count("\t") * tabsize,
    "replace": lambda s, old, new, count=-1: _replaced_size(s, old, new, count),
    "translate": lambda s, table: len(s) * max(map(len, _texts(table)), default=1),
}


def _joined_size(items: list, sep: str) -> int:
    return sum(len(i) if isinstance(i, str) else size(i) for i in items) + max(len(items) - 1, 0) * len(sep)


@pass_context
def _join(context, value, d="", attribute=None):
    items = value if type(value) is list else list(value)
    if len(items) > _FEW:
        _need(size(items) + len(items) * len(str(d)), "join")
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
        _need(_joined_size(items, max(str(sep), str(last), key=len)), "join_and")
    text = join_and(items, sep, last)
    if len(text) > _SMALL:
        charge(context, len(text), "join_and")
    return text


# filters that pad, wrap, repeat or substitute by their arguments: checked before and after they run
_SIZING_FILTERS = (*_FILTER_SIZES, "format")
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
            _check_formats(value, method=False)
        elif name in _FILTER_SIZES:
            _need(_FILTER_SIZES[name](value, *args, **kwargs), name)
        result = func(*first(context), value, *args, **kwargs)
        if isinstance(result, Iterator):  # batch and slice yield their groups
            result = list(result)
        charge(context, size(result), name)
        return result

    guarded.__name__ = guarded.__qualname__ = name
    return guarded


SIZING_METHODS = frozenset((*_METHOD_SIZES, "join", "format", "format_map"))
CONTAINER_TYPES = frozenset((list, tuple, dict, set, frozenset))


# --- compile-time restrictions ---------------------------------------------------------------------------------

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


# --- what the sandbox calls -------------------------------------------------------------------------------------


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
        _check_formats(left, method=False)
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
        _need(_joined_size(args[0], owner), "str.join()")
    elif name.startswith("format"):
        _check_formats(owner, method=True)
    else:
        _need(_METHOD_SIZES[name](owner, *args, **kwargs), f"str.{name}()")
    return args
