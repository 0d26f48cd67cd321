"""``GenerateConfig``: everything a generation run depends on; the ``generate`` command's options come from it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from fakeinstruct.errors import FakeInstructError
from fakeinstruct.generation.formats import FILE_FORMATS, FORMATS
from fakeinstruct.generation.splits import parse_ratios

IMAGE_MODES = ("relative", "embed")
UNDECIDED = ("inconclusive", "exclude")
# record fields that may name a dataset's own split (see GenerateConfig.split_from and fakeinstruct.chain.origin)
SPLIT_FIELDS = ("source.origin", "source.group", "id", "image")
# Fields that do not change the output: a resumed run may differ in these.
NOT_OUTPUT = ("workers", "overwrite", "progress", "out", "chains", "root", "template_dirs", "taxonomy", "strict")


def _families(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _ratios(text: str) -> dict[str, float]:
    try:
        return parse_ratios(text)
    except ValueError as err:  # argparse reports it as a usage error naming --split
        raise argparse.ArgumentTypeError(str(err)) from err


@dataclass
class GenerateConfig:
    """Everything that determines the output; saved next to it as ``fakeinstruct_config.json``."""

    chains: str = field(metadata={"positional": True, "help": "FakeChain JSONL file"})
    out: str = field(metadata={"help": "output folder"})
    root: str | None = field(
        default=None, metadata={"help": "dataset root that image paths are relative to (default: the file's folder)"}
    )
    format: str = field(default="trl", metadata={"choices": list(FORMATS), "help": "row layout"})
    file_format: str = field(default="parquet", metadata={"choices": FILE_FORMATS, "help": "shard file type"})
    images: str = field(
        default="relative",
        metadata={"choices": IMAGE_MODES, "help": "store images once under images/, or embed their bytes in rows"},
    )
    seed: int = field(default=0, metadata={"help": "global seed for phrasing choices and splits"})
    workers: int = field(default=1, metadata={"help": "worker processes (output is identical for any number)"})
    shard_size: int = field(default=10_000, metadata={"help": "rows per shard"})
    split_ratios: dict[str, float] = field(
        default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1},
        metadata={
            "flags": ["--split"],
            "parse": _ratios,
            "default_text": "0.8,0.1,0.1",
            "metavar": "TRAIN,VAL,TEST",
            "help": "split ratios",
        },
    )
    split_from: str | None = field(
        default=None,
        metadata={
            "choices": SPLIT_FIELDS,
            "help": "keep the dataset's own split, named in this record field (e.g. source.origin, which "
            "`fakeinstruct import` writes as DATASET/SPLIT/CATEGORY): its test and validation records stay there, "
            "and its train records are dealt to train and validation by the --split ratios of those two (none "
            "to validation when the dataset has its own); the test ratio is then unused",
        },
    )
    undecided: str = field(
        default="inconclusive",
        metadata={
            "choices": UNDECIDED,
            "help": "records whose evidence does not decide their label: keep their explanation, enhancement and "
            "multi-turn pairs (phrased by their inconclusive conclusion), or exclude them",
        },
    )
    families: list[str] | None = field(
        default=None, metadata={"parse": _families, "help": "comma-separated task families (default: all)"}
    )
    template_dirs: list[str] = field(
        default_factory=list,
        metadata={"flags": ["--templates"], "append": True, "help": "extra template folder (repeatable)"},
    )
    builtin_templates: bool = field(
        default=True, metadata={"help": "use only --templates folders and installed template packs"}
    )
    taxonomy: str | None = field(default=None, metadata={"help": "YAML file extending the attribute taxonomy"})
    check_images: bool = field(default=True, metadata={"help": "skip opening the images"})
    overwrite: bool = field(default=False, metadata={"help": "replace an earlier output in --out"})
    progress: bool = field(default=True, metadata={"help": "no progress bar"})
    strict: bool = field(
        default=False,
        metadata={
            "help": "stop at the first template that fails on a record (default: leave that pair out, report it, "
            "go on)"
        },
    )

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise FakeInstructError(f"unknown format {self.format!r}; one of {', '.join(FORMATS)}", field="format")
        if self.file_format not in FILE_FORMATS:
            raise FakeInstructError(f"unknown file format {self.file_format!r}", field="file_format")
        if self.images not in IMAGE_MODES:
            raise FakeInstructError(
                f"unknown image mode {self.images!r}; one of {', '.join(IMAGE_MODES)}", field="images"
            )
        if self.images == "embed" and (self.file_format != "parquet" or not FORMATS[self.format].has_images):
            raise FakeInstructError("--images embed needs --file-format parquet and a trl or prompt-completion format")
        if self.undecided not in UNDECIDED:
            raise FakeInstructError(f"undecided must be one of {', '.join(UNDECIDED)}", field="undecided")
        if self.split_from is not None and self.split_from not in SPLIT_FIELDS:
            raise FakeInstructError(
                f"split_from must be one of {', '.join(SPLIT_FIELDS)}, got {self.split_from!r}", field="split_from"
            )
        if self.workers < 1 or self.shard_size < 1:
            raise FakeInstructError("workers and shard size must be at least 1")
