"""The template engine: Jinja's immutable sandbox with limits on work and size, our filters, and a render memo.

Everything outside this package renders through these names; the modules behind them are its internals.
"""

from fakeinstruct.templating.engine.limits import (
    MAX_CHECK_SECONDS,
    MAX_LOOP_ITERATIONS,
    MAX_RENDERED_CHARS,
    MAX_VALUE_SIZE,
)
from fakeinstruct.templating.engine.memo import RenderMemo
from fakeinstruct.templating.engine.sandbox import (
    cpu_time_limit,
    environment,
    foreign_environment,
    render,
    with_globals,
)

__all__ = [
    "MAX_CHECK_SECONDS",
    "MAX_LOOP_ITERATIONS",
    "MAX_RENDERED_CHARS",
    "MAX_VALUE_SIZE",
    "RenderMemo",
    "cpu_time_limit",
    "environment",
    "foreign_environment",
    "render",
    "with_globals",
]
