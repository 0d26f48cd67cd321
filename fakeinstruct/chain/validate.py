"""``fakeinstruct validate``: check a chains file record by record and quarantine the bad lines."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from fakeinstruct.chain.reader import read_chains
from fakeinstruct.chain.taxonomy import Taxonomy
from fakeinstruct.errors import FakeChainError
from fakeinstruct.files import atomic_write
from fakeinstruct.images import DEFAULT_LIMITS, ImageLimits

logger = logging.getLogger(__name__)


@dataclass
class ValidationReport:
    path: Path
    valid: int = 0
    rejected: int = 0
    errors: list[FakeChainError] = field(default_factory=list)
    quarantine: Path | None = None

    @property
    def total(self) -> int:
        return self.valid + self.rejected


def default_quarantine_path(path: Path) -> Path:
    return path.with_name(path.stem + ".quarantine.jsonl")


def validate_chains(
    path: str | Path,
    *,
    root: str | Path | None = None,
    taxonomy: Taxonomy | None = None,
    quarantine: str | Path | None = None,
    check_images: bool = True,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> ValidationReport:
    """Validate every line of ``path``; rejected lines are written verbatim to the quarantine file.

    The quarantine file is only written (atomically) when something was rejected; a stale one from an
    earlier run is removed so that its presence always means "this run rejected lines".
    """
    path = Path(path)
    quarantine_path = Path(quarantine) if quarantine else default_quarantine_path(path)
    report = ValidationReport(path=path)
    rejected: list[bytes] = []
    lines = read_chains(path, root=root, taxonomy=taxonomy, check_images=check_images, limits=limits)
    for line in lines:
        if line.ok:
            report.valid += 1
        else:
            report.rejected += 1
            report.errors.extend(line.errors)
            rejected.append(line.raw)
    if rejected:
        with atomic_write(quarantine_path) as handle:
            for raw in rejected:
                handle.write(raw + b"\n")
        report.quarantine = quarantine_path
        logger.info("quarantined %d line(s) in %s", len(rejected), quarantine_path)
    elif quarantine_path.exists():
        quarantine_path.unlink()
    return report
