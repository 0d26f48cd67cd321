"""Resumable score files: ``scores.parquet`` or ``scores.jsonl``, one row per image, that survive ``kill -9``.

While a run goes, every process buffers its rows and, every ``save_every`` rows or ``save_seconds`` seconds, writes
them as one complete *part* file (Parquet or JSONL, as the output) in ``<output>.parts/``: written under a hidden
temporary name, fsynced, then renamed, so a part is there whole or not at all. ``_run.json`` there says what produced
the rows (weights, calibration head, questions, options). When every process is done, the first one merges the
earlier output (if any) and the parts, one row per image in input order, writes ``<output>`` and
``<output>.run.json`` the same way, and removes the parts.

A killed run leaves the earlier output untouched and its finished parts readable (``pandas.read_parquet`` reads
``scores.parquet.parts`` as one table; :func:`read_results` reads output and parts together). The same command
again skips every image scored in either and finishes the file. Images that could not be read are written with
their ``error`` and tried again by the next run. Rows from another model or other questions are never mixed in:
a run whose ``_run.json``/``run.json`` differs is refused (``overwrite`` starts afresh).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)

FORMATS = {".parquet": "parquet", ".jsonl": "jsonl"}
RUN_FILE = "_run.json"  # pyarrow skips names starting with "_" or "." when it reads the parts folder
KEY = "path"
METADATA_KEY = b"fakescope_run"
# Shown to a person where an explanation came out empty (a tiny or untrained model often emits only newlines or EOS):
# a blank line would read as a display bug. Score files keep the empty string.
NO_TEXT = "(the model generated no text)"


class ResultsError(ValueError):
    """The output cannot be written or resumed as asked."""


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ResultsError(f"{path}: the output must end in .parquet or .jsonl")
    return FORMATS[suffix]


def parts_dir(output: str | Path) -> Path:
    return Path(f"{output}.parts")


def run_file(output: str | Path) -> Path:
    return Path(f"{output}.run.json")


def row_schema(attributes: list[str] | None = None, explain: bool = False):
    """The columns of a score file: path, label, p_fake, p_fake_raw, logit, calibrated, [attributes], [explanation],
    error (null when the image was scored)."""
    import pyarrow as pa

    fields = [
        pa.field(KEY, pa.string()),
        pa.field("label", pa.string()),
        pa.field("p_fake", pa.float64()),
        pa.field("p_fake_raw", pa.float64()),
        pa.field("logit", pa.float64()),
        pa.field("calibrated", pa.bool_()),
    ]
    if attributes:
        fields.append(pa.field("attributes", pa.struct([pa.field(name, pa.float64()) for name in attributes])))
    if explain:
        fields.append(pa.field("explanation", pa.string()))
    fields.append(pa.field("error", pa.string()))
    return pa.schema(fields)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_table(table, path: Path, fmt: str, run: dict | None = None) -> None:
    """``table`` to ``path`` atomically (temporary name, fsync, rename)."""
    import pyarrow.parquet as pq

    from fakeinstruct.files import atomic_write

    if fmt == "parquet":
        if run is not None:
            table = table.replace_schema_metadata({METADATA_KEY: json.dumps(run, sort_keys=True).encode()})
        with atomic_write(path) as f:
            pq.write_table(table, f)
    else:
        with atomic_write(path, "w") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_pylist())
    _fsync_dir(path.parent)


def _read_table(path: Path, fmt: str, schema):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if fmt == "parquet":
        table = pq.read_table(path).replace_schema_metadata(None)
        return table if schema is None else table.select(schema.names).cast(schema)
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return pa.Table.from_pylist(rows, schema=schema)


def _canonical(run: dict) -> dict:
    return json.loads(json.dumps(run, sort_keys=True))


class ResultStore:
    """One process's view of a resumable score file (``rank`` of ``world`` processes)."""

    def __init__(
        self,
        output: str | Path,
        run: dict,
        schema,
        *,
        rank: int = 0,
        save_every: int = 1024,
        save_seconds: float = 30.0,
    ):
        self.output, self.fmt = Path(output), output_format(output)
        self.parts, self.run, self.schema = parts_dir(output), _canonical(run), schema
        self.rank, self.save_every, self.save_seconds = rank, max(1, save_every), save_seconds
        self._buffer: list[dict] = []
        self._last_save = time.monotonic()
        self._token = uuid.uuid4().hex[:8]
        self._seq = 0
        self.written = 0

    # -- before scoring -------------------------------------------------------------------------------------------
    def prepare(self, overwrite: bool = False) -> None:
        """First process only: start afresh (``overwrite``) or check that what is there came from this run's
        configuration; create the parts folder and its ``_run.json``."""
        from fakeinstruct.files import remove_stale_temps, write_text

        if overwrite:
            for path in (self.output, run_file(self.output)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            shutil.rmtree(self.parts, ignore_errors=True)
        if self.output.exists():
            recorded = run_file(self.output)
            if not recorded.is_file():
                raise ResultsError(
                    f"{self.output} exists but {recorded.name} (what produced it) does not: pass --overwrite to replace "
                    "it, or write elsewhere"
                )
            self._check(json.loads(recorded.read_text(encoding="utf-8")), recorded)
        if self.parts.is_dir() and (self.parts / RUN_FILE).is_file():
            self._check(json.loads((self.parts / RUN_FILE).read_text(encoding="utf-8")), self.parts / RUN_FILE)
            remove_stale_temps(self.parts)
        else:
            self.parts.mkdir(parents=True, exist_ok=True)
            write_text(self.parts / RUN_FILE, json.dumps(self.run, indent=2, sort_keys=True) + "\n")

    def _check(self, recorded: dict, where: Path) -> None:
        if _canonical(recorded) != self.run:
            differ = sorted(k for k in set(recorded) | set(self.run) if recorded.get(k) != self.run.get(k))
            raise ResultsError(
                f"{where} was written by another model or configuration (differs in: {', '.join(differ)}); pass "
                "--overwrite to start afresh, or write elsewhere"
            )

    def done(self) -> set[str]:
        """Keys already scored (without error) in the output or the parts."""
        table = self._existing()
        if table is None:
            return set()
        keys, errors = table.column(KEY).to_pylist(), table.column("error").to_pylist()
        return {key for key, error in zip(keys, errors, strict=True) if error is None}

    # -- while scoring --------------------------------------------------------------------------------------------
    def add(self, rows: list[dict]) -> None:
        self._buffer += rows
        if len(self._buffer) >= self.save_every or time.monotonic() - self._last_save >= self.save_seconds:
            self.save()

    def save(self) -> None:
        """Write the buffered rows as one part file, whole or not at all."""
        import pyarrow as pa

        self._last_save = time.monotonic()
        if not self._buffer:
            return
        table = pa.Table.from_pylist(self._buffer, schema=self.schema)
        name = f"part-{self.rank:05d}-{self._token}-{self._seq:06d}.{self.fmt}"
        _write_table(table, self.parts / name, self.fmt)
        self._seq += 1
        self.written += len(self._buffer)
        self._buffer = []

    # -- after scoring (first process, after every process saved) --------------------------------------------------
    def finish(self, order: list[str]) -> int:
        """Merge the earlier output and the parts into the output, one row per image (``order`` first, then rows of
        images not in this run's inputs, as they were); remove the parts. Returns the number of rows."""
        table = self._existing()
        if table is None:
            import pyarrow as pa

            table = pa.Table.from_pylist([], schema=self.schema)
        best = _latest(table)
        indices = [best.pop(key) for key in order if key in best]
        indices += sorted(best.values())
        merged = table.take(indices)
        _write_table(merged, self.output, self.fmt, self.run)
        from fakeinstruct.files import write_text

        write_text(run_file(self.output), json.dumps(self.run, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(self.parts, ignore_errors=True)
        return merged.num_rows

    def _existing(self):
        return _read_all(self.output, self.fmt, self.schema)


def _part_files(parts: Path, fmt: str) -> list[Path]:
    if not parts.is_dir():
        return []
    files = [p for p in parts.glob(f"part-*.{fmt}") if not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))


def _read_all(output: Path, fmt: str, schema=None):
    import pyarrow as pa

    tables = []
    if output.is_file():
        tables.append(_read_table(output, fmt, schema))
    tables += [_read_table(p, fmt, schema) for p in _part_files(parts_dir(output), fmt)]
    return pa.concat_tables(tables, promote_options="default") if tables else None


def _latest(table) -> dict[str, int]:
    """Row index per key: a later row wins unless it is an error and an earlier one was scored."""
    keys, errors = table.column(KEY).to_pylist(), table.column("error").to_pylist()
    best: dict[str, int] = {}
    for i, (key, error) in enumerate(zip(keys, errors, strict=True)):
        if key not in best or error is None or errors[best[key]] is not None:
            best[key] = i
    return best


def read_results(output: str | Path):
    """Everything a run (finished or killed) has written to ``output``, as a pyarrow Table: the output file and any
    parts, one row per image (the last scored row of an image wins)."""
    output = Path(output)
    table = _read_all(output, output_format(output), None)
    if table is None:
        raise FileNotFoundError(f"{output}: no output and no parts")
    return table.take(sorted(_latest(table).values()))
