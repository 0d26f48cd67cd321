"""``fakeinstruct generate``: FakeChain JSONL -> FakeInstruct shards, stats.json and a dataset card.

Pass one (:mod:`fakeinstruct.generation.plan`) validates every record and plans every shard; pass two
(:mod:`fakeinstruct.generation.shard`) renders and writes the shards, in worker processes when ``workers > 1``. Each
finished shard is recorded in ``manifest.json`` with its row count and hash, so a killed run started again
with the same command only writes the shards that are missing, and ends with the same manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fakeinstruct import __version__
from fakeinstruct.chain import SCHEMA_VERSION
from fakeinstruct.chain.taxonomy import load_taxonomy
from fakeinstruct.errors import FakeInstructError
from fakeinstruct.files import write_text
from fakeinstruct.generation.arrow_schema import FILE_FORMATS
from fakeinstruct.generation.formats import FORMATS
from fakeinstruct.generation.plan import plan_shards, scan
from fakeinstruct.generation.shard import MAX_FAILURE_EXAMPLES
from fakeinstruct.generation.stats import PairStats
from fakeinstruct.templating.probes import check_registry
from fakeinstruct.templating.registry import load_registry

logger = logging.getLogger(__name__)
CONFIG_FILE = "fakeinstruct_config.json"
MANIFEST_FILE = "manifest.json"
IMAGE_MODES = ("relative", "embed")
# Config fields that do not change the output: a resumed run may differ in these.
_NOT_OUTPUT = ("workers", "overwrite", "progress", "out", "chains", "root", "template_dirs", "taxonomy", "strict")


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
    builtin_templates: bool = True
    taxonomy: str | None = None
    check_images: bool = True
    overwrite: bool = False
    progress: bool = True
    # a template that fails on a record stops the run, instead of leaving that pair out and reporting it
    strict: bool = False

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
            raise FakeInstructError("--images embed needs --file-format parquet and a trl or prompt-completion format")
        if self.workers < 1 or self.shard_size < 1:
            raise FakeInstructError("workers and shard size must be at least 1")


@dataclass
class GenerateResult:
    out: Path
    records: int
    rejected: int
    pairs: int
    duplicates: int
    resumed_shards: int
    stats: dict
    template_failures: int = 0


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(config: GenerateConfig, registry, taxonomy_path: str | None, chains_sha256: str) -> dict:
    """What the output depends on. A folder written under another identity is never resumed into."""
    identity = {k: v for k, v in asdict(config).items() if k not in _NOT_OUTPUT}
    identity.update(
        fakeinstruct_version=__version__,
        schema_version=SCHEMA_VERSION,
        templates=registry.fingerprint(),
        template_names=[t.name for t in registry],
        taxonomy_sha256=_file_sha256(Path(taxonomy_path)) if taxonomy_path else None,
        chains_sha256=chains_sha256,
    )
    return identity


def _open_output(out: Path, identity: dict, overwrite: bool) -> dict:
    """Prepare ``out``; return the manifest of shards a previous run of the same identity finished."""
    config_path = out / CONFIG_FILE
    if out.exists() and any(out.iterdir()):
        if not config_path.exists():
            raise FakeInstructError(f"refusing to write into {out}: it is not empty and holds no {CONFIG_FILE}")
        previous = json.loads(config_path.read_text(encoding="utf-8"))
        if previous.get("identity") == identity and not overwrite:
            manifest_path = out / MANIFEST_FILE
            manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"shards": {}}
            for tmp in out.rglob(".*.tmp"):  # leftovers of writes that a kill interrupted
                tmp.unlink()
            return manifest
        if not overwrite:
            changed = sorted(k for k in identity if previous.get("identity", {}).get(k) != identity[k])
            raise FakeInstructError(
                f"{out} holds output generated with a different {', '.join(changed)}; pass --overwrite to replace it"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return {"shards": {}}


def _still_valid(out: Path, entry: dict) -> bool:
    path = out / entry["path"]
    return path.is_file() and _file_sha256(path) == entry["sha256"]


def generate(config: GenerateConfig) -> GenerateResult:
    """Run the whole generation; see the module docstring."""
    config.validate()
    chains_path = Path(config.chains)
    if not chains_path.is_file():
        raise FakeInstructError(f"chains file not found: {chains_path}")
    config.root = str(Path(config.root) if config.root else chains_path.parent)
    out = Path(config.out)
    load_taxonomy(config.taxonomy)  # a bad taxonomy file fails here, in the main process, not in a worker
    registry = load_registry(config.template_dirs, builtin=config.builtin_templates)
    check_registry(registry)
    registry = registry.select(config.families)
    if not len(registry):
        raise FakeInstructError("no templates selected")

    from fakeinstruct.generation.plan import byte_ranges, scan_range
    from fakeinstruct.generation.worker import init_worker

    pool = None
    if config.workers > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(config.workers, init_worker, (config,))
    else:
        init_worker(config)
    try:
        # hashing the chains file (for the folder's identity) overlaps the validation pass in the workers
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as hasher:
            chains_sha256 = hasher.submit(_file_sha256, chains_path)
            ranges = byte_ranges(chains_path, config.workers * 4)
            results = pool.imap(scan_range, ranges) if pool else map(scan_range, ranges)
            refs, rejected = scan(chains_path, results)
        plan = plan_shards(refs, config.split_ratios, config.seed, config.shard_size)
        del refs
        logger.info(
            "%d valid record(s), %d rejected; %d templates; %d shards planned",
            plan.records,
            rejected,
            len(registry),
            len(plan.shards),
        )
        identity = _identity(config, registry, config.taxonomy, chains_sha256.result())
        manifest = _open_output(out, identity, config.overwrite)
        write_text(out / CONFIG_FILE, json.dumps({"identity": identity, "config": asdict(config)}, indent=2) + "\n")
        done = {name: e for name, e in manifest["shards"].items() if _still_valid(out, e)}
        todo = [s for s in plan.shards if s.name not in done]
        if done:
            logger.info("resuming: %d of %d shards already written", len(done), len(plan.shards))
        _run_shards(config, pool, todo, done, out, sum(s.planned_pairs for s in todo))
        if pool is not None:
            pool.close()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()

    stats = PairStats.merged(e["stats"] for e in done.values())
    summary = stats.summary()
    summary["duplicates_removed"] = sum(e["duplicates"] for e in done.values())
    summary["template_failures"] = failures = _merged_failures(done)
    summary["records"] = {"valid": plan.records, "rejected": rejected, "per_split": plan.records_per_split}
    write_text(out / "stats.json", json.dumps(summary, indent=2) + "\n")
    from fakeinstruct.report.card import render_dataset_card

    write_text(out / "README.md", render_dataset_card(identity | {"out": str(out)}, summary))
    logger.info("wrote %d pairs (%d duplicates removed) to %s", stats.pairs, summary["duplicates_removed"], out)
    return GenerateResult(
        out,
        plan.records,
        rejected,
        stats.pairs,
        summary["duplicates_removed"],
        len(plan.shards) - len(todo),
        summary,
        failures["pairs"],
    )


def _run_shards(config: GenerateConfig, pool, todo, done: dict, out: Path, planned_pairs: int) -> None:
    """Render ``todo`` (in ``pool`` when given), recording each finished shard in the manifest."""
    from tqdm.auto import tqdm

    from fakeinstruct.generation.shard import render_shard

    progress = tqdm(total=planned_pairs, unit="pair", desc="generate", disable=not config.progress)
    results = pool.imap_unordered(render_shard, todo) if pool else map(render_shard, todo)
    entries = {name: _manifest_entry(name, entry) for name, entry in done.items()}
    with progress:
        for result in results:
            # a shard without failures keeps the manifest entry it always had
            done[result.name] = {k: v for k, v in asdict(result).items() if k != "name" and v != {}}
            entries[result.name] = _manifest_entry(result.name, done[result.name])
            write_text(out / MANIFEST_FILE, _manifest_text(entries))
            progress.update(result.rows + result.duplicates + result.failures.get("pairs", 0))


def _manifest_entry(name: str, entry: dict) -> str:
    """One shard's lines of ``manifest.json``, as ``json.dumps(manifest, indent=1, sort_keys=True)`` writes them."""
    return f"  {json.dumps(name)}: " + json.dumps(entry, indent=1, sort_keys=True).replace("\n", "\n  ")


def _manifest_text(entries: dict[str, str]) -> str:
    """The manifest of ``entries`` (from :func:`_manifest_entry`): serialising each shard once, rather than the whole
    manifest after every shard, keeps the main process off the CPU that the workers need."""
    if not entries:
        return json.dumps({"shards": {}}, indent=1) + "\n"
    return '{\n "shards": {\n' + ",\n".join(entries[name] for name in sorted(entries)) + "\n }\n}\n"


def _merged_failures(done: dict) -> dict:
    """The template failures of every shard, in shard order, each template's logged once with an example."""
    merged: dict = {"pairs": 0, "by_template": {}, "examples": []}
    for name in sorted(done):
        failures = done[name].get("failures", {})
        merged["pairs"] += failures.get("pairs", 0)
        for key, count in failures.get("by_template", {}).items():
            merged["by_template"][key] = merged["by_template"].get(key, 0) + count
        # keys sorted as the manifest stores them: a resumed shard's examples read back from it look the same
        merged["examples"] += (dict(sorted(e.items())) for e in failures.get("examples", []))
    merged["examples"].sort(key=lambda e: (e["line"], e["template"], e["field"], e["error"]))
    for key, count in sorted(merged["by_template"].items()):
        template, _, field_name = key.rpartition(": ")
        first = next((e for e in merged["examples"] if (e["template"], e["field"]) == (template, field_name)), None)
        example = f"; first on line {first['line']} (record {first['id']!r}): {first['error']}" if first else ""
        logger.warning("%s: %s failed %d time(s); those pairs were left out%s", template, field_name, count, example)
    merged["examples"] = merged["examples"][:MAX_FAILURE_EXAMPLES]
    return merged
