"""Entry points print our lines and keep library chatter out, whatever a library's logger is called."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

CHILD = """
import logging, sys
from fakeinstruct.logs import setup_logging
setup_logging(verbose=sys.argv[1] == "-v", fmt="%(name)s|%(message)s")
for name in ("httpx2", "httpx", "some_new_client", "datasets.builder"):
    logging.getLogger(name).info("chatter")
logging.getLogger("httpx2").warning("client warning")
for name in ("fakeinstruct.generation", "modeling.hub.export", "scripts.push_to_hub", "__main__"):
    logging.getLogger(name).info("ours")
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_only_our_info_lines_pass_unless_verbose(verbose):
    flag = "-v" if verbose else "-"
    lines = subprocess.run(
        [sys.executable, "-c", CHILD, flag], capture_output=True, text=True, check=True
    ).stderr.splitlines()
    ours = {"fakeinstruct.generation|ours", "modeling.hub.export|ours", "scripts.push_to_hub|ours", "__main__|ours"}
    assert ours <= set(lines)
    assert "httpx2|client warning" in lines
    chatter = [line for line in lines if line.endswith("|chatter")]
    assert len(chatter) == (4 if verbose else 0), lines


def test_setting_up_twice_keeps_one_filter():
    from fakeinstruct.logs import OwnLinesOnly, setup_logging

    root = logging.getLogger()
    level, handler = root.level, logging.StreamHandler()
    root.addHandler(handler)
    try:
        setup_logging()
        setup_logging()
        assert sum(isinstance(f, OwnLinesOnly) for f in handler.filters) == 1
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for other in root.handlers:
            for added in [f for f in other.filters if isinstance(f, OwnLinesOnly)]:
                other.removeFilter(added)
