"""Logging for the command-line entry points of both packages: our INFO lines, libraries' chatter at WARNING.

HTTP clients log every request at INFO (``httpx``: "HTTP Request: GET ..."), and so do parts of ``datasets`` and
``huggingface_hub``; a command that publishes a dataset would drown its own lines in them. ``-v`` lets them through.
"""

from __future__ import annotations

import logging

CHATTY = ("httpx", "httpcore", "urllib3", "huggingface_hub", "datasets", "filelock", "fsspec", "PIL", "matplotlib")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False, quiet: bool = False, fmt: str = FORMAT) -> None:
    """INFO for our loggers (DEBUG with ``verbose``, WARNING with ``quiet``); WARNING for chatty libraries unless
    ``verbose``."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format=fmt)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
