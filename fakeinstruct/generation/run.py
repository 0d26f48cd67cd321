"""``fakeinstruct generate``: FakeChain JSONL -> FakeInstruct shards, stats.json and a dataset card.

Pass one (:mod:`.plan`) validates every record and plans every shard; pass two (:mod:`.shard`) renders and writes
the shards, in worker processes when ``workers > 1``. Each finished shard is recorded in ``manifest.json`` with its
row count and hash, so a killed run started again with the same command only writes the shards that are missing,
and ends with the same manifest.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from fakeinstruct import __version__
from fakeinstruct.chain import SCHEMA_VERSION
from fakeinstruct.chain.taxonomy import load_taxonomy
from fakeinstruct.errors import FakeInstructError
from fakeinstruct.files import remove_stale_temps
from fakeinstruct.folder import FakeInstructFolder, ManifestWriter, writing
from fakeinstruct.generation.config import NOT_OUTPUT, GenerateConfig
from fakeinstruct.generation.context import Workers
from fakeinstruct.generation.formats import FORMATS
from fakeinstruct.generation.plan import byte_ranges, plan_shards, scan, scan_range
from fakeinstruct.generation.shard import MAX_FAILURE_EXAMPLES, render_shard
from fakeinstruct.generation.stats import PairStats
from fakeinstruct.templating.probes import check_registry
from fakeinstruct.templating.registry import load_registry

logger = logging.getLogger(__name__)


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


def _identity(config: GenerateConfig, registry, chains_sha256: str) -> dict:
    """What the output depends on. A folder written under another identity is never resumed into."""
    identity = {k: v for k, v in asdict(config).items() if k not in NOT_OUTPUT}
    if identity.get("split_from") is None:  # folders written before the option existed keep their identity
        identity.pop("split_from", None)
    identity.update(
        fakeinstruct_version=__version__,
        schema_version=SCHEMA_VERSION,
        templates=registry.fingerprint(),
        template_names=[t.name for t in registry],
        taxonomy_sha256=_file_sha256(Path(config.taxonomy)) if config.taxonomy else None,
        chains_sha256=chains_sha256,
    )
    return identity


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
    load_taxonomy(config.taxonomy)  # a bad taxonomy file fails here, in the main process, not in a worker
    registry = load_registry(config.template_dirs, builtin=config.builtin_templates)
    check_registry(registry)
    registry = registry.select(config.families)
    if not len(registry):
        raise FakeInstructError("no templates selected")

    workers = Workers(config, FORMATS[config.format].schema(config.images == "embed"))
    failed = True
    try:
        # hashing the chains file (for the folder's identity) overlaps the validation pass in the workers
        with ThreadPoolExecutor(1) as hasher:
            chains_sha256 = hasher.submit(_file_sha256, chains_path)
            refs, rejected = scan(chains_path, workers.map(scan_range, byte_ranges(chains_path, config.workers * 4)))
        plan = plan_shards(refs, config.split_ratios, config.seed, config.shard_size, config.split_from)
        del refs
        logger.info(
            "%d valid record(s), %d rejected; %d templates; %d shards planned",
            plan.records,
            rejected,
            len(registry),
            len(plan.shards),
        )
        identity = _identity(config, registry, chains_sha256.result())
        with writing(config.out):
            folder, manifest = FakeInstructFolder.prepare(config.out, identity, config.overwrite)
            folder.write_config(identity, asdict(config), [s.name for s in plan.shards], plan.image_prefix)
            done = {name: e for name, e in manifest["shards"].items() if _still_valid(folder.path, e)}
            todo = [s for s in plan.shards if s.name not in done]
            if done:
                logger.info("resuming: %d of %d shards already written", len(done), len(plan.shards))
            _run_shards(config, workers, todo, done, folder, sum(s.planned_pairs for s in todo))
        workers.close()
        failed = False
    finally:
        workers.terminate()
        if failed and Path(config.out).is_dir():
            # the workers stopped mid-shard are gone: their temporary files go too (a live writer's stay)
            remove_stale_temps(config.out)

    stats = PairStats.merged(e["stats"] for e in done.values())
    summary = stats.summary()
    summary["duplicates_removed"] = sum(e["duplicates"] for e in done.values())
    summary["template_failures"] = failures = _merged_failures(done)
    summary["records"] = {
        "valid": plan.records,
        "rejected": rejected,
        "per_split": plan.records_per_split,
        **plan.review,
    }
    from fakeinstruct.report.card import render_dataset_card

    with writing(config.out):
        folder.write_stats(summary)
        folder.write_card(render_dataset_card(identity | {"out": str(folder.path)}, summary))
    logger.info(
        "wrote %d pairs (%d duplicates removed) to %s", stats.pairs, summary["duplicates_removed"], folder.path
    )
    return GenerateResult(
        folder.path,
        plan.records,
        rejected,
        stats.pairs,
        summary["duplicates_removed"],
        len(plan.shards) - len(todo),
        summary,
        failures["pairs"],
    )


def _run_shards(config: GenerateConfig, workers: Workers, todo, done: dict, folder, planned_pairs: int) -> None:
    """Render ``todo``, recording each finished shard in the manifest."""
    from tqdm.auto import tqdm

    progress = tqdm(total=planned_pairs, unit="pair", desc="generate", disable=not config.progress)
    manifest = ManifestWriter(folder, done)
    with progress:
        for result in workers.map(render_shard, todo, ordered=False):
            # a shard without failures keeps the manifest entry it always had
            done[result.name] = {k: v for k, v in asdict(result).items() if k != "name" and v != {}}
            manifest.add(result.name, done[result.name])
            progress.update(result.rows + result.duplicates + result.failures.get("pairs", 0))


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
