#!/usr/bin/env python
"""Benchmark `fakeinstruct generate` at scale: pairs/s, peak RSS of all processes, and the writer floor.

The input is built by re-identifying FakeChain records (the bundled sample by default) until they give the
target number of pairs: each copy gets its own id, split group and image path (a hard link), so that copies
neither collapse as duplicates nor share split components. Then, in the same run:

- ``seconds``: `fakeinstruct generate` as a subprocess, timed from start to exit;
- ``peak_rss_mb``: the largest sum of the resident memory of that process and its workers, sampled every 100 ms;
- ``floor_seconds``: the same number of pairs, already rendered, written by the same shard writer in the
  same number of processes, with no templating: the cost of the output alone. The pairs (those of the first
  500 records) are rendered before the floor is timed and handed to the processes as they start.

The last line printed is a JSON object: pairs, seconds, pairs_per_s, peak_rss_mb, floor_seconds, ratio_to_floor, and
the CPU seconds of both (``cpu_seconds``, ``floor_cpu_seconds``: all their processes together), which another job on
the machine disturbs less than the wall-clock times.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import math
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

from fakeinstruct.arguments import HelpFormatter, both_spellings
from fakeinstruct.chain import FakeChain
from fakeinstruct.chain.taxonomy import default_taxonomy
from fakeinstruct.generation.expand import Expander
from fakeinstruct.templating.registry import load_registry

SAMPLE = Path(__file__).resolve().parents[1] / "fakeinstruct" / "data" / "sample" / "chains.jsonl"
logger = logging.getLogger("scripts.benchmark_generate")


def build_input(chains: Path, work: Path, target_pairs: int) -> tuple[Path, int]:
    """Write re-identified copies of ``chains`` (and image links) under ``work``; return the file and pairs."""
    expander = Expander(load_registry(), default_taxonomy())
    records = [FakeChain.model_validate_json(line) for line in chains.read_bytes().splitlines() if line.strip()]
    per_copy = sum(expander.count(r) for r in records)
    copies = math.ceil(target_pairs / per_copy)
    out = work / "chains.jsonl"
    root = chains.parent
    with out.open("wb") as handle:
        for k in range(copies):
            for record in records:
                data = record.model_dump(mode="json")
                image = f"copies/{k:05d}/{record.image}"
                link = work / image
                if not link.exists():
                    link.parent.mkdir(parents=True, exist_ok=True)
                    os.link(root / record.image, link)
                data.update(id=f"{record.id}.c{k:05d}", image=image)
                data["source"]["group"] = f"{record.group}.c{k:05d}"
                handle.write(orjson.dumps(data) + b"\n")
    return out, copies * per_copy


class TreeRss:
    """Samples the summed RSS of a process and all its descendants in a background thread."""

    def __init__(self, pid: int, interval: float = 0.1):
        import psutil

        self.process, self.interval, self.peak = psutil.Process(pid), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.process, *self.process.children(recursive=True)]
                total = 0
                for proc in procs:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += proc.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.NoSuchProcess:
                return
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (and theirs, once waited for): less noisy than wall time on a
    shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_generate(chains: Path, out: Path, workers: int, shard_size: int, fmt: str) -> tuple[float, int, float]:
    argv = [sys.executable, "-m", "fakeinstruct.cli", "-q", "generate", str(chains), "--out", str(out)]
    argv += ["--workers", str(workers), "--shard-size", str(shard_size), "--format", fmt, "--no-progress"]
    cpu, start = _children_cpu(), time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    sampler = TreeRss(proc.pid)
    code = proc.wait()
    seconds = time.perf_counter() - start
    peak = sampler.stop()
    if code != 0:
        sys.exit(f"generate failed with exit code {code}")
    return seconds, peak, _children_cpu() - cpu


_FLOOR: dict = {}
FLOOR_RECORDS = 500


def floor_pairs(chains: Path) -> list:
    """The pairs the floor writes over and over: those of the first records of ``chains``, rendered here, before
    the floor is timed, so that the floor holds no templating and reads none of the input."""
    expander = Expander(load_registry(), default_taxonomy())
    with chains.open("rb") as handle:
        lines = [line for line in itertools.islice(handle, FLOOR_RECORDS) if line.strip()]
    return [p for line in lines for p in expander.expand(FakeChain.model_validate_json(line))]


def _floor_init(pairs: list, fmt: str, schema) -> None:
    _FLOOR.update(pairs=pairs, fmt=fmt, schema=schema)


def _floor_shard(task: tuple[str, int, int]) -> int:
    """One shard written as generate writes it (the format's columns, zstd Parquet, an atomic file)."""
    import io

    import pyarrow.parquet as pq

    from fakeinstruct.files import atomic_write
    from fakeinstruct.generation.formats import FORMATS

    path, start, rows = task
    pool = _FLOOR["pairs"]
    pairs = [pool[(start + i) % len(pool)] for i in range(rows)]
    buffer = io.BytesIO()
    table = FORMATS[_FLOOR["fmt"]].table(pairs, [f"images/{p.image}" for p in pairs], _FLOOR["schema"])
    pq.write_table(table, buffer, compression="zstd")
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())
    return rows


def run_floor(pool_pairs: list, out: Path, pairs: int, workers: int, shard_size: int, fmt: str) -> tuple[float, float]:
    """Seconds to write ``pairs`` pairs with the shard writer in ``workers`` processes, started as generate
    starts its workers (spawned; their start-up is timed, as generate's is); also their CPU seconds."""
    out.mkdir(parents=True, exist_ok=True)
    tasks = [
        (str(out / f"floor-{i:05d}.parquet"), i * shard_size, min(shard_size, pairs - i * shard_size))
        for i in range(math.ceil(pairs / shard_size))
    ]
    from fakeinstruct.generation.formats import FORMATS

    schema = FORMATS[fmt].schema(False)  # made in the main process and handed to the workers, as generate does
    cpu, start = _children_cpu(), time.perf_counter()
    with mp.get_context("spawn").Pool(workers, _floor_init, (pool_pairs, fmt, schema)) as pool:
        written = sum(pool.imap_unordered(_floor_shard, tasks))
        pool.close()
        pool.join()  # waited for, so that their CPU time is counted
    assert written == pairs
    return time.perf_counter() - start, _children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2_000_000, help="target number of pairs")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for generate and the floor")
    parser.add_argument(*both_spellings("--shard_size"), type=int, default=10_000, help="rows per shard")
    parser.add_argument("--format", default="trl", choices=["trl", "prompt-completion", "llava"])
    parser.add_argument("--chains", type=Path, default=SAMPLE, help="FakeChain file to re-identify")
    parser.add_argument(
        *both_spellings("--work_dir"), type=Path, help="where input and outputs go (default: a temporary folder)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="fakeinstruct-bench-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        logger.info("building the input for %d pairs from %s", args.pairs, args.chains)
        chains, expected = build_input(args.chains, work, args.pairs)
        logger.info("input: %s (%d pairs expected); running generate with %d workers", chains, expected, args.workers)
        for previous in (work / "out", work / "floor"):  # a kept --work-dir would otherwise be resumed
            shutil.rmtree(previous, ignore_errors=True)
        seconds, peak, cpu = run_generate(chains, work / "out", args.workers, args.shard_size, args.format)
        stats = json.loads((work / "out" / "stats.json").read_text())
        logger.info("generate: %.1f s; now the writer floor", seconds)
        pool_pairs = floor_pairs(chains)
        floor, floor_cpu = run_floor(
            pool_pairs, work / "floor", stats["pairs"], args.workers, args.shard_size, args.format
        )
    result = {
        "pairs": stats["pairs"],
        "seconds": round(seconds, 2),
        "pairs_per_s": round(stats["pairs"] / seconds),
        "peak_rss_mb": round(peak / 2**20),
        "floor_seconds": round(floor, 2),
        "ratio_to_floor": round(floor / seconds, 3),
        "cpu_seconds": round(cpu, 2),
        "floor_cpu_seconds": round(floor_cpu, 2),
        "workers": args.workers,
        "format": args.format,
        "duplicates_removed": stats["duplicates_removed"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
