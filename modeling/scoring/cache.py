"""Resumable per-item results: a JSONL file appended batch by batch, read back on the next run.

Scoring or generating over a long test set can be killed at any point; the next run skips every item already in
the cache. A kill in the middle of a write leaves at most one partial last line, which is ignored. The first line
is a header that says what produced the results (model, prompts); a cache with another header is started afresh.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)


class ResultCache:
    """Results keyed by ``key_field``, persisted in ``path`` (None: in memory only)."""

    def __init__(self, path: str | Path | None, header: dict, key_field: str = "key"):
        self.path = Path(path) if path is not None else None
        self.header, self.key_field = {"cache_header": header}, key_field
        self.results: dict[str, dict] = {}
        if self.path is not None:
            self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        try:
            header = json.loads(lines[0])
        except json.JSONDecodeError:
            header = None
        if header != self.header:
            logger.warning("%s was written by another model or configuration; starting afresh", self.path)
            self.path.unlink()
            return
        for line in lines[1:]:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the partial last line of an interrupted write
            self.results[row[self.key_field]] = row
        logger.info("%s: resuming with %d cached results", self.path, len(self.results))

    def __contains__(self, key: str) -> bool:
        return key in self.results

    def __getitem__(self, key: str) -> dict:
        return self.results[key]

    def add(self, rows: Iterable[dict]) -> None:
        rows = list(rows)
        for row in rows:
            self.results[row[self.key_field]] = row
        if self.path is None or not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as f:
            if new:
                f.write(json.dumps(self.header) + "\n")
            elif f.tell() and not self._ends_with_newline():
                f.write("\n")  # close a partial line left by an interrupted write
            f.write("".join(json.dumps(row) + "\n" for row in rows))
            f.flush()
            os.fsync(f.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
