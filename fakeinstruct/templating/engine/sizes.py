"""How large a template value is, and how large an operation's result will be, read from its arguments.

:mod:`fakeinstruct.templating.engine.limits` checks these sizes against :data:`MAX_VALUE_SIZE` before the
operations that pad, wrap, repeat or substitute run, and charges what a render built to its budget.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Mapping

from jinja2 import Undefined
from jinja2.sandbox import SecurityError
from jinja2.utils import Namespace

# The largest value a render may build: characters of a string, items of a container counted as printing it would
# expand them. A record line is at most 1 MiB, so whatever is built from one record's text fits.
MAX_VALUE_SIZE = 1 << 20


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


def need(size: int, what: str) -> None:
    if size > MAX_VALUE_SIZE:
        raise SecurityError(f"{what} would build a value of size {size}, over the limit of {MAX_VALUE_SIZE}")


_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?[a-zA-Z%]")


def check_width(number: str, what: str) -> None:
    # the digits are counted before int() reads them: int() refuses over 4300 digits, with its own error
    if number == "*" or len(number) > 7 or int(number) > MAX_VALUE_SIZE:
        raise SecurityError(f"{what} of {number[:20]} is not allowed (at most {MAX_VALUE_SIZE})")


def check_formats(text: str, method: bool) -> None:
    """Widths and precisions in a ``%`` format, or in a ``str.format`` one when ``method``."""
    if not method:
        for match in _PRINTF.finditer(text):
            for number in filter(None, match.groups()):
                check_width(number, "a % format width")
        return
    for _, _, spec, _ in string.Formatter().parse(text):
        if spec and "{" in spec:
            raise SecurityError("nested format fields are not allowed in templates")
        for number in re.findall(r"\d+", spec or ""):
            check_width(number, "a format width")


def replaced_size(text: str, old, new, count) -> int:
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def wrapped_size(text: str, width: int, wrap: str) -> int:
    # a greedy wrap fills each line but the last past half its width
    return len(text) + (2 * len(text) // max(width, 1) + text.count("\n") + 2) * len(wrap)


def _texts(table) -> list[str]:
    values = table.values() if isinstance(table, Mapping) else table if isinstance(table, Collection) else ()
    return [v for v in values if isinstance(v, str)]


# The result size of the filters and str methods that pad, wrap, repeat or substitute, from their arguments (named
# as Jinja and Python name them); a wrong argument raises the TypeError the operation itself would.
FILTER_SIZES = {
    "center": lambda value, width=80: max(len(str(value)), width),
    "indent": lambda s, width=4, first=False, blank=False: (
        len(str(s)) + (str(s).count("\n") + 1) * (len(width) if isinstance(width, str) else width)
    ),
    "replace": lambda s, old, new, count=None: replaced_size(str(s), str(old), str(new), count),
    "wordwrap": lambda s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True: wrapped_size(
        str(s), width, wrapstring or "\n"
    ),
    "batch": lambda value, linecount, fill_with=None: linecount * (0 if fill_with is None else size(fill_with)),
    "slice": lambda value, slices, fill_with=None: slices * (1 if fill_with is None else 1 + size(fill_with)),
}
METHOD_SIZES = {
    "center": lambda s, width, fillchar=" ": max(len(s), width),
    "ljust": lambda s, width, fillchar=" ": max(len(s), width),
    "rjust": lambda s, width, fillchar=" ": max(len(s), width),
    "zfill": lambda s, width: max(len(s), width),
    "expandtabs": lambda s, tabsize=8: len(s) + s.count("\t") * tabsize,
    "replace": lambda s, old, new, count=-1: replaced_size(s, old, new, count),
    "translate": lambda s, table: len(s) * max(map(len, _texts(table)), default=1),
}


def joined_size(items: list, sep: str) -> int:
    return sum(len(i) if isinstance(i, str) else size(i) for i in items) + max(len(items) - 1, 0) * len(sep)
