"""FakeClue, the training and test data of FakeVLM -> FakeChain.

Layout, as published (the ``lingcco/FakeClue`` dataset card on the Hub: ``data_json/{train,test}.json`` and
``train.zip``/``test.zip``; FakeVLM's README: images under ``<split>/<category>/{fake,real}/``)::

    ROOT/data_json/train.json     a JSON list of records (104,343 per the paper; 5,000 in test.json)
    ROOT/data_json/test.json
    ROOT/train/<image>            the images, as train.zip unpacks (ROOT/train/train/<image> is found too)
    ROOT/test/<image>

A record: ``{"image": "ff++/fake/Deepfakes/c23/frames/071_054/160.png", "label": 0, "cate": "deepfake",
"width": 256, "height": 256, "conversations": [{"from": "human", "value": "<image>Does the image looks real/fake?"},
{"from": "gpt", "value": "This is a fake image. ..."}]}``. Checked against FakeVLM's ``process_data.py`` (lingcco/
FakeVLM: ``label == 1`` files an image under ``real/``, categories doc, satellite, genimage, chameleon, ff++), the
copy of FakeVLM's ``scripts/eval.py`` in a fork (it asks ``conversations[0]``'s question, reads "real"/"fake" from the
answer's first sentence, counts 1 as real, and reports accuracy per ``cate``), and two third-party loaders
(``data_dir/<split>/<image>``; ``label: 0 = fake, 1 = real``). Categories seen in test.json by a third party:
animal, deepfake, doc, human, object, satellite, scene.

Where each FakeChain field comes from:

- ``id``: ``fakeclue.<split>.<index>`` (FakeClue has no ids: the record's index in its file).
- ``image``: ``<split folder>/<image>``.
- ``label``: ``label``, 0 = fake and 1 = real. The explanation's first sentence ("This is a fake image.") must say
  the same, or the record is rejected.
- ``source``: ``origin`` ``FakeClue/<split>/<cate>``; ``license`` Apache-2.0 (the Hub dataset card); ``generator``
  the folder under ``fake/`` (the FF++ manipulation, e.g. ``Deepfakes``) or a generator name that starts the file
  name (GenImage's, e.g. ``VQDM_...``), else ``unknown``; ``group`` the video folder of FF++ frames
  (``.../frames/<video>/``), so frames of one video stay in one split group.
- ``attributes``: the explanation's sentences after the verdict, mapped onto the taxonomy by ``phrases.yaml``.
- ``reasoning``: those sentences but the last; ``conclusion``: the verdict sentence and the last sentence.
- ``provenance``: ``annotation`` machine and every text field in ``machine_fields``: the paper describes FakeClue's
  explanations as written by several LMMs prompted with the label and category knowledge.

Not confirmed: the official ``scripts/eval.py`` itself (only a fork's copy was found), and whether every record's
human turn is the same question (the benchmark evaluation asks each record's own).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fakeinstruct.chain.origin import make_origin as origin
from fakeinstruct.chain.origin import normalize_split
from fakeinstruct.errors import FakeChainError
from fakeinstruct.importers.common import (
    Entry,
    ImportReport,
    Passage,
    clean_text,
    fake_source,
    generator_family,
    make_id,
    read_json,
    real_source,
)
from fakeinstruct.importers.config import ImportConfig
from fakeinstruct.importers.phrases import sentences

DATASET = "FakeClue"
LICENSE = "Apache-2.0 (FakeClue dataset card, lingcco/FakeClue)"
TEXT_KIND = "the FakeClue explanation"
_VERDICT = re.compile(
    r"^\W*this\s+(?:image\s+|picture\s+|photo\s+)?(?:is|appears to be|looks)\s+(?:an?\s+)?"
    r"(real|fake|authentic|genuine|synthetic|ai-generated|generated)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Item:
    """One FakeClue record as published (what the importer and the benchmark evaluation share)."""

    file: str
    index: int
    split: str
    image: str  # relative to ROOT
    label: str
    category: str | None
    question: str
    explanation: str

    def error(self, message: str, field_name: str | None = None) -> FakeChainError:
        return FakeChainError(message, file=self.file, line=self.index, field=field_name)


def split_files(root: Path, wanted: list[str] | None = None) -> list[tuple[str, Path]]:
    """(split, file) of each ``data_json/<split>.json``, train before validation before test."""
    order = {"train": 0, "validation": 1, "test": 2}
    found = []
    for path in sorted((root / "data_json").glob("*.json")):
        split = normalize_split(path.stem)
        if split and (not wanted or split in {normalize_split(w) or w for w in wanted}):
            found.append((split, path))
    return sorted(found, key=lambda pair: order[pair[0]])


def _image_folder(root: Path, stem: str, records: list) -> str:
    """Where a split's images are: ``ROOT/<stem>`` or, as some unzips leave them, ``ROOT/<stem>/<stem>``."""
    for record in records[:20]:
        image = record.get("image") if isinstance(record, dict) else None
        if isinstance(image, str):
            for folder in (stem, f"{stem}/{stem}"):
                if (root / folder / image).is_file():
                    return folder
    return stem


def _answer(conversations) -> tuple[str | None, str | None]:
    question = answer = None
    if isinstance(conversations, list):
        for turn in conversations:
            if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
                continue
            if turn.get("from") == "human" and question is None:
                question = turn["value"]
            elif turn.get("from") == "gpt" and answer is None:
                answer = turn["value"]
    return question, answer


def read_items(root: Path, split: str, path: Path, limit: int | None = None) -> Iterator[Item | FakeChainError]:
    """The records of one split file, in order; a record that cannot be read is a :class:`FakeChainError`."""
    file = str(path)
    try:
        records = read_json(path)
    except (OSError, ValueError) as err:
        yield FakeChainError(f"cannot read: {err}", file=file)
        return
    if not isinstance(records, list):
        yield FakeChainError(f"expected a JSON list, got {type(records).__name__}", file=file)
        return
    folder = _image_folder(root, path.stem, records)
    for index, record in enumerate(records[:limit] if limit else records):
        if not isinstance(record, dict):
            yield FakeChainError(f"expected an object, got {type(record).__name__}", file=file, line=index)
            continue
        image, label = record.get("image"), record.get("label")
        if not isinstance(image, str) or not image.strip():
            yield FakeChainError("missing image path", file=file, line=index, field="image")
            continue
        if type(label) is not int or label not in (0, 1):
            message = f"label must be 0 (fake) or 1 (real), got {label!r}"
            yield FakeChainError(message, file=file, line=index, field="label")
            continue
        image = image.strip().removeprefix("./")
        category = record.get("cate")
        question, answer = _answer(record.get("conversations"))
        yield Item(
            file=file,
            index=index,
            split=split,
            image=f"{folder}/{image}",
            label="real" if label == 1 else "fake",
            category=category.strip() if isinstance(category, str) and category.strip() else None,
            question=clean_text(question or ""),
            explanation=clean_text(answer or ""),
        )


def _generator(image: str) -> str:
    parts = image.split("/")
    if "fake" in parts[:-1]:
        after = parts[parts.index("fake") + 1 : -1]
        if after:
            return after[0]
    stem = parts[-1].split("_")[0].split("-")[0]
    return stem if stem and generator_family(stem) != "other" else "unknown"


def group_of(image: str) -> str | None:
    """The split group of a FakeClue image: the video folder of FF++ frames (None: the image itself)."""
    parts = image.split("/")[1:]  # without the split folder: one video is one group across splits
    if "frames" in parts[:-2]:
        return "/".join(parts[: parts.index("frames") + 2])
    return None


def to_entry(item: Item) -> Entry | FakeChainError:
    """The importer's entry for one FakeClue record."""
    where = origin(DATASET, item.split, item.category)
    group = group_of(item.image)
    if item.label == "real":
        source = real_source(where, LICENSE, group)
    else:
        source = fake_source(_generator(item.image), where, LICENSE, group)
    steps = sentences(item.explanation)
    conclusion = None
    if steps and (match := _VERDICT.match(steps[0])):
        said = "real" if match.group(1).lower() in ("real", "authentic", "genuine") else "fake"
        if said != item.label:
            return item.error(f"the explanation says {said!r} but the label is {item.label!r}", "conversations")
        verdict, steps = steps[0], steps[1:]
        if steps:
            conclusion = f"{verdict} {steps[-1]}" if len(steps) > 1 else verdict
    return Entry(
        file=item.file,
        index=item.index,
        id=make_id("fakeclue", item.split, f"{item.index:06d}"),
        image=item.image,
        label=item.label,
        source=source,
        label_source=f"FakeClue data_json/{Path(item.file).name}: label (0 = fake, 1 = real)",
        dataset=DATASET,
        text_kind=TEXT_KIND,
        text_author="machine",
        passages=[Passage(" ".join(steps))] if steps else [],
        reasoning=steps[:-1] if len(steps) > 1 else steps,
        conclusion=conclusion,
    )


def read(root: Path, config: ImportConfig, report: ImportReport) -> Iterator[Entry | FakeChainError]:
    files = split_files(root, config.splits)
    if not files:
        yield FakeChainError(
            "no split file found (expected data_json/train.json or data_json/test.json)", file=str(root)
        )
        return
    for split, path in files:
        report.files.append(str(path))
        for item in read_items(root, split, path, config.limit):
            yield item if isinstance(item, FakeChainError) else to_entry(item)
