"""``fakeinstruct import``: read a dataset's entries, build and validate a FakeChain record for each, write them.

Entries are built in worker processes when ``workers > 1`` (output in source order, identical for any number of
workers). An entry whose source has no text to take evidence from is drafted from its image by
:func:`fakeinstruct.drafting.draft.draft_manifest` (``missing_evidence="draft"``, the default) and written after the
others, marked machine-only; with ``missing_evidence="error"`` it is rejected. Every rejected source record is one
:class:`~fakeinstruct.errors.FakeChainError` (source file, index, field) in the report; the rest is imported, as
``fakeinstruct validate`` does with bad lines. The output is written atomically, with a summary beside it
(``<out stem>.import.json``) and, when something was rejected, every rejection (``<out stem>.rejected.jsonl``).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from pydantic import ValidationError

from fakeinstruct.chain import FakeChain
from fakeinstruct.chain.taxonomy import Taxonomy, load_taxonomy
from fakeinstruct.errors import FakeChainError, FakeInstructError
from fakeinstruct.files import atomic_write, resolve_inside, temp_prefix, write_text
from fakeinstruct.images import check_image
from fakeinstruct.importers.common import Entry, ImportReport, build_record
from fakeinstruct.importers.config import ImportConfig
from fakeinstruct.importers.phrases import Phrases, load_phrases

logger = logging.getLogger(__name__)


def summary_path(out: Path) -> Path:
    return out.with_name(out.stem + ".import.json")


def rejected_path(out: Path) -> Path:
    """Every rejection of the last run, one JSON object a line: file, index, field, message."""
    return out.with_name(out.stem + ".rejected.jsonl")


class _Builder:
    """What building a record needs, once per process: the root, the phrases, the taxonomy and the image checks."""

    def __init__(self, root: str, check_images: bool, taxonomy: Taxonomy, phrases: Phrases):
        self.root, self.check_images = Path(root), check_images
        self.taxonomy, self.phrases = taxonomy, phrases
        self.sizes: dict = {}  # image checks by file identity: an image many entries share is decoded once

    def _size(self, entry: Entry) -> tuple[int, int] | None:
        path = resolve_inside(self.root, entry.image)
        st = path.stat()  # FileNotFoundError for a missing image
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key in self.sizes:
            return self.sizes[key]
        if self.check_images:
            size = check_image(self.root, entry.image)
        elif any(p.region is not None for p in entry.passages):
            from PIL import Image

            with Image.open(path) as img:  # the header only: regions are clipped to the image
                size = img.size
        else:
            size = None
        self.sizes[key] = size
        return size

    def __call__(self, entry: Entry) -> tuple[bytes | None, tuple | None, list[FakeChainError], bool]:
        """(JSON line, (origin, label, decides), errors, needs a draft) for one entry."""
        parts = entry.image.split("/")
        if entry.image.startswith("/") or "\\" in entry.image or any(p in ("", ".", "..") for p in parts):
            message = f"image {entry.image!r} must be a '/'-separated path inside the dataset root, without '..'"
            return None, None, [entry.error(message, "image")], False
        try:
            size = self._size(entry)
        except FakeChainError as err:
            return None, None, [entry.error(err.message, err.field or "image")], False
        except FileNotFoundError:
            return None, None, [entry.error(f"image file not found: {entry.image}", "image")], False
        except OSError as err:
            return None, None, [entry.error(f"cannot read image {entry.image}: {err}", "image")], False
        record = build_record(entry, self.phrases, self.taxonomy, size)
        if record is None:
            return None, None, [], True
        try:
            chain = FakeChain.model_validate(record, context={"taxonomy": self.taxonomy})
        except ValidationError as err:
            errors = []
            for problem in err.errors(include_url=False):
                where = ".".join(str(p) for p in problem["loc"]) or "(record)"
                errors.append(entry.error(problem["msg"].removeprefix("Value error, "), where))
            return None, None, errors, False
        meta = (chain.source.origin, chain.label, chain.provenance.evidence_decides_label, chain.image)
        return orjson.dumps(chain.to_data()) + b"\n", meta, [], False


_builder: _Builder | None = None


def _start_worker(root: str, check_images: bool, taxonomy_file: str | None, phrases_file: str | None) -> None:
    global _builder
    taxonomy = load_taxonomy(taxonomy_file)
    _builder = _Builder(root, check_images, taxonomy, load_phrases(phrases_file, taxonomy))


def _build(entry: Entry):
    return _builder(entry)


def _built(entries: list[Entry], config: ImportConfig, taxonomy: Taxonomy, phrases: Phrases) -> Iterator:
    if config.workers <= 1 or len(entries) < 2:
        builder = _Builder(config.root, config.check_images, taxonomy, phrases)
        yield from map(builder, entries)
        return
    import multiprocessing as mp

    chunk = max(1, min(512, len(entries) // (8 * config.workers)))
    args = (config.root, config.check_images, config.taxonomy, config.phrases)
    with mp.get_context("spawn").Pool(config.workers, _start_worker, args) as pool:
        yield from pool.imap(_build, entries, chunksize=chunk)


def _read(config: ImportConfig, report: ImportReport) -> list[Entry]:
    from fakeinstruct.importers import importer

    entries, first = [], {}
    for item in importer(config.format).read(Path(config.root), config, report):
        if isinstance(item, FakeChainError):
            report.add_error(item)
            continue
        if item.id in first:
            report.add_error(item.error(f"duplicate id {item.id!r} (first at {first[item.id]})", "id"))
            continue
        first[item.id] = f"{item.file}:{item.index}"
        entries.append(item)
    return entries


def _draft(entries: list[Entry], config: ImportConfig, taxonomy: Taxonomy, report: ImportReport, handle) -> None:
    """Draft records for ``entries`` from their images and write them to ``handle``; a draft that fails is one
    rejected record, the rest are drafted again without it."""
    from fakeinstruct.drafting.draft import draft_manifest

    out = Path(config.out)
    todo = list(entries)
    with tempfile.TemporaryDirectory(prefix=temp_prefix(out.name), suffix=".tmp", dir=out.parent) as tmp:
        manifest, drafts = Path(tmp) / "manifest.jsonl", Path(tmp) / "drafts.jsonl"
        while todo:
            lines = [{"id": e.id, "image": e.image, "label": e.label, "source": e.source} for e in todo]
            manifest.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
            try:
                draft_manifest(config.root, manifest, drafts, workers=config.workers, progress=config.progress)
                break
            except FakeChainError as err:
                if err.file != str(manifest) or not err.line:
                    raise
                bad = todo.pop(err.line - 1)
                report.add_error(bad.error(f"cannot draft: {err.message}", err.field or "image"))
        if not todo:
            return
        with drafts.open("rb") as drafted:
            for entry, raw in zip(todo, drafted, strict=True):
                record = orjson.loads(raw)
                record["provenance"]["label_source"] = entry.label_source[:200]
                try:
                    chain = FakeChain.model_validate(record, context={"taxonomy": taxonomy})
                except ValidationError as err:
                    problem = err.errors(include_url=False)[0]
                    where = ".".join(str(p) for p in problem["loc"]) or "(record)"
                    report.add_error(entry.error(f"draft invalid: {problem['msg']}", where))
                    continue
                data = chain.to_data()
                handle.write(orjson.dumps(data) + b"\n")
                decides = data["provenance"].get("evidence_decides_label")
                report.count(data["source"]["origin"], data["label"], decides, data["image"])
                report.drafted += 1


def import_dataset(config: ImportConfig) -> ImportReport:
    """Import a dataset (see the module docstring); returns what was written and rejected."""
    from tqdm.auto import tqdm

    config.validate()
    root, out = Path(config.root), Path(config.out)
    if not root.is_dir():
        raise FakeInstructError(f"dataset root not found: {root}")
    start = time.perf_counter()
    taxonomy = load_taxonomy(config.taxonomy)
    phrases = load_phrases(config.phrases, taxonomy)
    report = ImportReport(config.format, root, out)
    entries = _read(config, report)
    if not entries and not report.errors:
        raise FakeInstructError(f"no {config.format} records found under {root}")
    logger.info("%d entries read from %s; building records with %d worker(s)", len(entries), root, config.workers)
    to_draft: list[Entry] = []
    with atomic_write(out) as handle:
        bar = tqdm(total=len(entries), unit="rec", desc="import", disable=not config.progress)
        for entry, (line, meta, errors, needs_draft) in zip(
            entries, _built(entries, config, taxonomy, phrases), strict=True
        ):
            bar.update()
            if errors:
                report.rejected += 1
                report.errors += errors
            elif needs_draft:
                if config.missing_evidence == "draft":
                    to_draft.append(entry)
                else:
                    message = (
                        "its source gives no text that names a taxonomy attribute (--missing_evidence draft drafts it)"
                    )
                    report.add_error(entry.error(message))
            else:
                handle.write(line)
                report.count(*meta)
        bar.close()
        del entries
        if to_draft:
            logger.info("drafting %d record(s) whose source has no evidence text", len(to_draft))
            _draft(to_draft, config, taxonomy, report, handle)
    report.seconds = time.perf_counter() - start
    write_text(summary_path(out), json.dumps(report.summary(), indent=2) + "\n")
    rejected = rejected_path(out)
    if report.errors:  # written only when something was rejected, so that its presence means this run rejected
        lines = ({"file": e.file, "index": e.line, "field": e.field, "message": e.message} for e in report.errors)
        write_text(rejected, "".join(json.dumps(line) + "\n" for line in lines))
    elif rejected.exists():
        rejected.unlink()
    logger.info("%d records -> %s (%d rejected, %d drafted)", report.records, out, report.rejected, report.drafted)
    shortcut = report.format_shortcut()
    if shortcut["flagged"]:
        logger.warning(
            "the file format alone predicts the label for %.1f%% of the records (always guessing the majority label: "
            "%.1f%%): put both classes through the same resize and JPEG before training, or a detector learns the "
            "format (per format and label: %s)",
            100 * shortcut["accuracy_from_format"],
            100 * shortcut["majority_baseline"],
            report.summary()["per_format"],
        )
    return report
