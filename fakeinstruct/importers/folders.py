"""Folder trees -> FakeChain: labels, split and generator from the path; evidence drafted from each image.

Two layouts are recognised, per image file (jpg, jpeg, png, webp, bmp, tif, tiff, gif, any case), anywhere below
ROOT:

- GenImage's: ``<generator>/[<subfolder>/]<train|val>/<ai|nature>/<image>`` (GenImage's own trees add a subfolder
  such as ``imagenet_ai_0419_sdv4``); ``ai`` is fake, ``nature`` real;
- plain label folders: ``[<split>/]<real|fake>/<image>`` (also ``0_real``/``1_fake``, as ForenSynths-style trees
  name them), optionally under a generator folder.

The label is the last label folder in the path; the split the last split folder before it (train, val, valid,
validation, dev, test); the generator the top folder when it is neither (else ``--generator``, else ``unknown``). As
GenImage evaluates on its ``val`` folders and has no ``test``, a tree without any test folder gets its ``val`` as the
``test`` split; with a test folder, ``val`` is ``validation``. A file whose path names no label folder is rejected.

Where each FakeChain field comes from:

- ``id``: ``<dataset>.<path>`` (path characters outside letters, digits and . _ : - replaced);
  ``image``: the path; ``label``: the label folder.
- ``source``: ``origin`` ``<dataset>/<split>`` (``--dataset_name``, default ROOT's folder name), ``license``
  ``--license`` (default ``unknown``), ``generator`` as above (``camera`` for real images), family looked up from the
  generator's name; ``group`` for a real image its file name, so that the same photograph filed under several
  generators (GenImage's ``nature`` folders are ImageNet photographs) stays in one split group.
- everything else: drafted by :func:`fakeinstruct.drafting.draft.draft_manifest` from the image's measurements
  (``provenance.annotation`` machine, label-blind verdicts), so every record is machine-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fakeinstruct.chain.origin import make_origin as origin
from fakeinstruct.chain.origin import normalize_split
from fakeinstruct.errors import FakeChainError
from fakeinstruct.importers.common import (
    Entry,
    ImportReport,
    fake_source,
    make_id,
    real_source,
)
from fakeinstruct.importers.config import ImportConfig

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
LABEL_FOLDERS = {"ai": "fake", "fake": "fake", "1_fake": "fake", "nature": "real", "real": "real", "0_real": "real"}


def _images(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.suffix.lower() in EXTENSIONS and not any(p.startswith(".") for p in relative.parts) and path.is_file():
            found.append(relative.as_posix())
    return sorted(found)


def read(root: Path, config: ImportConfig, report: ImportReport) -> Iterator[Entry | FakeChainError]:
    dataset = config.dataset_name or root.resolve().name or "folders"
    license = config.license or "unknown"
    images = _images(root)
    report.files.append(str(root))
    folders = {part.lower() for image in images for part in image.split("/")[:-1]}
    val_is = "test" if not any(normalize_split(f) == "test" for f in folders) else "validation"
    wanted = {normalize_split(s) or s for s in config.splits} if config.splits else None
    counts: dict[str, int] = {}
    for index, image in enumerate(images):
        parts = image.split("/")
        folders_of = [p.lower() for p in parts[:-1]]
        at = max((i for i, p in enumerate(folders_of) if p in LABEL_FOLDERS), default=None)
        if at is None:
            message = "no label folder (ai, nature, real, fake, 0_real, 1_fake) in the path"
            yield FakeChainError(message, file=str(root / image), field="image")
            continue
        label = LABEL_FOLDERS[folders_of[at]]
        split = None
        for part in folders_of[:at]:
            split = normalize_split(part) or split
            if part in ("val", "valid"):
                split = val_is
        if wanted is not None and split not in wanted:
            continue
        key = f"{split}/{label}"
        counts[key] = counts.get(key, 0) + 1
        if config.limit and counts[key] > config.limit:
            continue
        top = parts[0] if at > 0 and not normalize_split(parts[0]) else None
        where = origin(dataset, split)
        if label == "real":
            source = real_source(where, license, group=f"real:{parts[-1]}")
        else:
            source = fake_source(top or config.generator, where, license)
        yield Entry(
            file=str(root / image),
            index=index,
            id=make_id(dataset, image),
            image=image,
            label=label,
            source=source,
            label_source=f"folder tree {dataset}: the '{parts[at]}' folder in the image's path",
            dataset=dataset,
            text_author="machine",
        )
