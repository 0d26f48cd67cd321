"""Logging for the command-line entry points of both packages: our INFO lines, libraries' chatter at WARNING.

HTTP clients log every request at INFO ("HTTP Request: GET ..."), under names that change between releases
(``httpx``, ``httpx2``), and so do parts of ``datasets`` and ``huggingface_hub``; a command that publishes a dataset
would drown its own lines in them. So the handler lets INFO through only from our own loggers (``fakeinstruct``,
``modeling``, ``scripts``), whatever the libraries are called; ``-v`` lets everything through.
"""

from __future__ import annotations

import logging

OWN = ("fakeinstruct", "modeling", "scripts", "__main__")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class OwnLinesOnly(logging.Filter):
    """Warnings and errors from anyone; lower levels only from our own loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".", 1)[0] in OWN


def setup_logging(verbose: bool = False, quiet: bool = False, fmt: str = FORMAT) -> None:
    """INFO for our loggers (DEBUG with ``verbose``, WARNING with ``quiet``); WARNING for every library unless
    ``verbose``."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format=fmt)
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        for existing in [f for f in handler.filters if isinstance(f, OwnLinesOnly)]:
            handler.removeFilter(existing)
        if not verbose:
            handler.addFilter(OwnLinesOnly())
