"""``ImportConfig``: what ``fakeinstruct import`` reads and how; the command's options come from its fields."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from fakeinstruct.errors import FakeInstructError

FORMAT_NAMES = ("fakeclue", "loki", "fakebench", "folders")
MISSING_EVIDENCE = ("draft", "error")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _format(text: str) -> str:
    if text not in FORMAT_NAMES:
        raise argparse.ArgumentTypeError(f"unknown format {text!r}; one of {', '.join(FORMAT_NAMES)}")
    return text


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


@dataclass
class ImportConfig:
    """A public dataset in its published layout -> one FakeChain JSONL file (see ``fakeinstruct.importers``)."""

    format: str = field(
        metadata={
            "positional": True,
            "parse": _format,
            "metavar": "FORMAT",
            "help": f"dataset format: {', '.join(FORMAT_NAMES)}",
        }
    )
    root: str = field(
        metadata={"positional": True, "metavar": "ROOT", "help": "the dataset's root folder, as downloaded"}
    )
    out: str = field(metadata={"help": "FakeChain JSONL to write (inside ROOT, or give generate --root ROOT)"})
    workers: int = field(default=1, metadata={"parse": _positive, "help": "worker processes"})
    splits: list[str] | None = field(
        default=None,
        metadata={"parse": _names, "help": "comma-separated dataset splits to import, e.g. test (default: all)"},
    )
    phrases: str | None = field(
        default=None, metadata={"help": "YAML file extending the phrases that map text onto the taxonomy"}
    )
    taxonomy: str | None = field(default=None, metadata={"help": "YAML file extending the attribute taxonomy"})
    check_images: bool = field(
        default=True, metadata={"help": "only check that each image exists inside ROOT, without decoding it"}
    )
    missing_evidence: str = field(
        default="draft",
        metadata={
            "choices": MISSING_EVIDENCE,
            "help": "records whose source has no text to take evidence from: draft it from the image "
            "(fakeinstruct draft, marked machine-only), or reject them",
        },
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "folders: the dataset's name in source.origin (default: ROOT's folder name)"}
    )
    license: str | None = field(
        default=None, metadata={"help": "folders: the images' license for source.license (default: 'unknown')"}
    )
    generator: str | None = field(
        default=None, metadata={"help": "folders: generator of the fakes when their path names none"}
    )
    limit: int | None = field(
        default=None,
        metadata={"parse": _positive, "help": "import at most N records of each source file (smoke runs)"},
    )
    strict: bool = field(default=False, metadata={"help": "exit non-zero when any record is rejected"})
    progress: bool = field(default=True, metadata={"help": "no progress bar"})

    def validate(self) -> None:
        if self.format not in FORMAT_NAMES:
            raise FakeInstructError(f"unknown format {self.format!r}; one of {', '.join(FORMAT_NAMES)}")
        if self.missing_evidence not in MISSING_EVIDENCE:
            raise FakeInstructError(f"missing_evidence must be one of {', '.join(MISSING_EVIDENCE)}")
        if self.workers < 1:
            raise FakeInstructError("workers must be at least 1")
