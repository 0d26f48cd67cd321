"""``fakeinstruct generate``: FakeChain JSONL -> FakeInstruct shards, stats.json and a dataset card.

Two passes over the chains file: the first validates every record and assigns leakage-free splits, the second
expands the valid records into pairs (in worker processes when ``workers > 1``) and writes them in input order,
so the output is identical for any number of workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fakeinstruct import __version__
from fakeinstruct.atomic import write_text
from fakeinstruct.chain import SCHEMA_VERSION, FakeChain
from fakeinstruct.errors import FakeChainError, FakeInstructError
from fakeinstruct.formats import FORMATS, to_row
from fakeinstruct.images import resolve_inside
from fakeinstruct.reader import read_chains
from fakeinstruct.registry import load_registry
from fakeinstruct.splits import SPLITS, assign_splits
from fakeinstruct.stats import PairStats
from fakeinstruct.taxonomy import load_taxonomy
from fakeinstruct.writers import FILE_FORMATS, ShardWriter

logger = logging.getLogger(__name__)
CONFIG_FILE = "fakeinstruct_config.json"
IMAGE_MODES = ("relative", "embed")


@dataclass
class GenerateConfig:
    """Everything that determines the output; saved next to it as ``fakeinstruct_config.json``."""

    chains: str
    out: str
    root: str | None = None
    format: str = "trl"
    file_format: str = "parquet"
    images: str = "relative"
    seed: int = 0
    workers: int = 1
    shard_size: int = 10_000
    split_ratios: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    families: list[str] | None = None
    template_dirs: list[str] = field(default_factory=list)
    taxonomy: str | None = None
    check_images: bool = True
    overwrite: bool = False
    progress: bool = True

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise FakeInstructError(f"unknown format {self.format!r}; one of {', '.join(FORMATS)}", field="format")
        if self.file_format not in FILE_FORMATS:
            raise FakeInstructError(f"unknown file format {self.file_format!r}", field="file_format")
        if self.images not in IMAGE_MODES:
            raise FakeInstructError(
                f"unknown image mode {self.images!r}; one of {', '.join(IMAGE_MODES)}", field="images"
            )
        if self.images == "embed" and (self.file_format != "parquet" or self.format == "llava"):
            raise FakeInstructError(
                "--images embed needs --file-format parquet and a trl or prompt-completion format", field="images"
            )
        if self.workers < 1 or self.shard_size < 1:
            raise FakeInstructError("workers and shard size must be at least 1")


@dataclass
class GenerateResult:
    out: Path
    records: int
    rejected: int
    pairs: int
    stats: dict


# --------------------------------------------------------------------------- worker side
_WORKER: dict = {}


def _init_worker(config: GenerateConfig) -> None:
    taxonomy = load_taxonomy(config.taxonomy)
    registry = load_registry(config.template_dirs, check=False).select(config.families)
    from fakeinstruct.expand import Expander

    _WORKER.update(expander=Expander(registry, taxonomy, config.seed), taxonomy=taxonomy, config=config)


def _expand_batch(batch: list[bytes]) -> list[tuple[str, list[dict]]]:
    expander, config, taxonomy = _WORKER["expander"], _WORKER["config"], _WORKER["taxonomy"]
    root = Path(config.root)
    out = []
    for raw in batch:
        chain = FakeChain.model_validate_json(raw, context={"taxonomy": taxonomy})
        if config.images == "embed":
            image_ref = {"bytes": resolve_inside(root, chain.image).read_bytes(), "path": chain.image}
        else:
            image_ref = f"images/{chain.image}"
        out.append((chain.id, [to_row(p, config.format, image_ref) for p in expander.expand(chain)]))
    return out


# --------------------------------------------------------------------------- orchestration
def _batches(lines: list[bytes], size: int) -> Iterator[list[bytes]]:
    for start in range(0, len(lines), size):
        yield lines[start : start + size]


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FakeInstructError(f"output folder {out} is not empty; pass --overwrite to replace it")
        if not (out / CONFIG_FILE).exists():
            raise FakeInstructError(f"refusing to overwrite {out}: it holds no {CONFIG_FILE}, so it is not our output")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _copy_image(root: Path, out: Path, relative: str) -> None:
    src = resolve_inside(root, relative)
    dst = out / "images" / relative
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def generate(config: GenerateConfig) -> GenerateResult:
    """Run the whole generation; see the module docstring."""
    config.validate()
    chains_path = Path(config.chains)
    config.root = str(Path(config.root) if config.root else chains_path.parent)
    root, out = Path(config.root), Path(config.out)
    taxonomy = load_taxonomy(config.taxonomy)
    registry = load_registry(config.template_dirs).select(config.families)
    if not len(registry):
        raise FakeInstructError("no templates selected")

    # pass 1: validate, keep the valid raw lines, collect what the split needs
    valid: list[bytes] = []
    keys: list[tuple[str, str, str]] = []
    rejected = 0
    for line in read_chains(chains_path, root=root, taxonomy=taxonomy, check_images=config.check_images):
        if line.ok:
            valid.append(line.raw)
            keys.append((line.chain.id, line.chain.image, line.chain.group))
        else:
            rejected += 1
            for err in line.errors:
                logger.warning("%s", err)
    if not valid:
        raise FakeChainError("no valid record remains", file=str(chains_path))
    logger.info("%d valid record(s), %d rejected, %d template(s)", len(valid), rejected, len(registry))
    split_of = assign_splits(keys, config.split_ratios, config.seed)

    _prepare_out(out, config.overwrite)
    if config.images == "relative":
        for _, image, _ in keys:
            _copy_image(root, out, image)
    writers = {
        s: ShardWriter(out, s, config.format, config.file_format, config.shard_size, config.images == "embed")
        for s in SPLITS
    }
    stats = PairStats()

    from tqdm.auto import tqdm

    batch_size = max(1, min(256, len(valid) // (config.workers * 4) or 1))
    batches = _batches(valid, batch_size)
    progress = tqdm(total=len(valid), unit="record", desc="generate", disable=not config.progress)
    if config.workers == 1:
        _init_worker(config)
        results = map(_expand_batch, batches)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(config.workers, initializer=_init_worker, initargs=(config,))
        results = pool.imap(_expand_batch, batches)
    try:
        for batch in results:
            for chain_id, rows in batch:
                split = split_of[chain_id]
                for row in rows:
                    writers[split].write(row)
                    stats.add(row, split)
            progress.update(len(batch))
    finally:
        progress.close()
        if pool is not None:
            pool.close()
            pool.join()
    shards = {s: [asdict(sh) for sh in w.close()] for s, w in writers.items()}

    summary = stats.summary()
    summary["records"] = {"valid": len(valid), "rejected": rejected, "per_split": _count(split_of.values())}
    write_text(out / "stats.json", json.dumps(summary, indent=2) + "\n")
    saved = asdict(config) | {
        "fakeinstruct_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "templates": registry.fingerprint(),
        "template_names": [t.name for t in registry],
        "chains_sha256": hashlib.sha256(chains_path.read_bytes()).hexdigest(),
        "shards": shards,
    }
    write_text(out / CONFIG_FILE, json.dumps(saved, indent=2) + "\n")
    from fakeinstruct.card import render_dataset_card

    write_text(out / "README.md", render_dataset_card(saved, summary))
    logger.info("wrote %d pairs to %s", summary["pairs"], out)
    return GenerateResult(out=out, records=len(valid), rejected=rejected, pairs=summary["pairs"], stats=summary)


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items()))
