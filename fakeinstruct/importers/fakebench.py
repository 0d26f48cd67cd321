"""FakeBench -> FakeChain.

Layout, as published in FakeBench's repository (Yixuan423/FakeBench: ``Evaluation/*.json``; README: the 6,000 images
come as ``FakeBench_images/{fake_images,real_images}``)::

    ROOT/Evaluation/FakeClass.json   [{image_id, question, answer, authenticity}]: the labels, 0 = fake, 1 = real
    ROOT/Evaluation/FakeClue.json    [{image_id, image_caption, content_categories, telltale_clues,
                                      telltale_categories, generation_model, faultfinding_mode, inference_mode}]
    ROOT/Evaluation/FakeQA.json      [{image_id, Q1..Q14, A1..A14}]: one question per forgery dimension (optional)
    ROOT/FakeBench_images/fake_images/<image_id>, ROOT/FakeBench_images/real_images/<image_id>

(The three files are also found directly in ROOT.) Checked against the published files: FakeClass.json lists the
6,000 images once each (3,000 asked "fake or real?", 3,000 a yes/no question; ``authenticity`` 0 for the 3,000
fakes, 1 for the 3,000 real images from COCO, ImageNet and DIV2K); FakeClue.json and FakeQA.json cover the 3,000
fakes, 300 per ``generation_model`` (Glide, dalle3, sd, cogview2, dalle2, styleGAN, FuseDream, VQDM, midjourney,
proGAN). **The public release leaves ``telltale_clues``, ``telltale_categories`` and every ``A*`` answer empty**: its
README withholds the labelled descriptions ("to avoid corpus leakage"). This importer reads the labelled version in
the same layout; on the public files no image has evidence text, and each is drafted from its image
(``--missing_evidence draft``) or rejected. The format of a filled ``telltale_categories`` is not confirmed: a list,
or names separated by commas or semicolons, are accepted; a name is mapped with the ``aliases`` of ``phrases.yaml``
(FakeBench's 14 FakeQA dimensions: texture, edges, clarity, light & shadow, layout, symmetry, reflection,
perspective, shape, theme, content deficiency, distortion, unrealistic aspect, overall tone); an unknown name
rejects the record.

The classes differ in file format (from the published image names): 1,343 of the 1,363 PNG files are fakes, all
but 217 of the 1,786 ``.JPEG`` files (ImageNet's) are real. The import reports it (``format_shortcut`` in the
summary, and a warning): launder both classes alike before training on them.

Where each FakeChain field comes from:

- ``id``: ``fakebench.<image_id stem>``; ``image``: ``FakeBench_images/<fake|real>_images/<image_id>`` (the folder
  must match the label).
- ``label``: ``authenticity`` in FakeClass.json, the same in all of an image's questions.
- ``source``: ``origin`` ``FakeBench/test/<content_categories>`` (FakeBench is a test benchmark), ``license``
  "CC BY-NC" (the README's terms; the code is MIT), ``generator`` ``generation_model`` (else the image name's prefix,
  "Glide-01370.jpg"), family looked up from it.
- ``attributes``: each telltale category, with the clue sentences that name it as evidence (all the clues when
  none does), anomalous; then the clue sentences and the FakeQA answers mapped by ``phrases.yaml`` (an answer is
  evidence for its question's dimension, with the verdict its cues give).
- ``reasoning``: the clue sentences; ``conclusion``: written by the importer. ``provenance.annotation``
  human+machine (FakeBench's descriptions are human-written with a human-in-the-loop strategy, per its paper).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
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
    make_id,
    read_json,
    real_source,
)
from fakeinstruct.importers.config import ImportConfig
from fakeinstruct.importers.phrases import load_phrases, sentences

DATASET = "FakeBench"
SPLIT = "test"
LICENSE = "CC BY-NC (FakeBench README: non-commercial research use)"
TEXT_KIND = "FakeBench's telltale clues"
IMAGES = "FakeBench_images"
_DIMENSION = re.compile(r"^(?:how (?:is|are) the|is there|is it)\s+(.+?)\s+regarding\b", re.IGNORECASE)


def find_file(root: Path, name: str) -> Path | None:
    for path in (root / "Evaluation" / name, root / name):
        if path.is_file():
            return path
    return None


def _load(path: Path) -> tuple[list, FakeChainError | None]:
    try:
        data = read_json(path)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        return [], FakeChainError(f"cannot read: {err}", file=str(path))
    if not isinstance(data, list):
        return [], FakeChainError(f"expected a JSON list, got {type(data).__name__}", file=str(path))
    return data, None


def _by_image(path: Path | None, report: ImportReport) -> Iterator[tuple[str, int, dict] | FakeChainError]:
    if path is None:
        return
    report.files.append(str(path))
    records, error = _load(path)
    if error:
        yield error
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("image_id"), str) or not record["image_id"]:
            yield FakeChainError("expected an object with an image_id", file=str(path), line=index, field="image_id")
            continue
        yield record["image_id"], index, record


def _categories(value) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,;\n]", value) if part.strip()]
    return []


def read(root: Path, config: ImportConfig, report: ImportReport) -> Iterator[Entry | FakeChainError]:
    if config.splits and SPLIT not in {normalize_split(s) for s in config.splits}:
        return
    labels_path = find_file(root, "FakeClass.json")
    if labels_path is None:
        yield FakeChainError("Evaluation/FakeClass.json (the labels) not found", file=str(root))
        return
    phrases = load_phrases(config.phrases)
    labels: dict[str, dict] = {}
    for item in _by_image(labels_path, report):
        if isinstance(item, FakeChainError):
            yield item
            continue
        image_id, index, record = item
        value = record.get("authenticity")
        if type(value) is not int or value not in (0, 1):
            message = f"authenticity must be 0 (fake) or 1 (real), got {value!r}"
            yield FakeChainError(message, file=str(labels_path), line=index, field="authenticity")
            continue
        label = "fake" if value == 0 else "real"
        seen = labels.setdefault(image_id, {"label": label, "index": index})
        if seen["label"] != label:
            message = f"authenticity says {label}, but index {seen['index']} says {seen['label']}"
            yield FakeChainError(message, file=str(labels_path), line=index, field="authenticity")
            seen["conflict"] = True
    clues: dict[str, tuple[int, dict]] = {}
    clue_path = find_file(root, "FakeClue.json")
    for item in _by_image(clue_path, report):
        if isinstance(item, FakeChainError):
            yield item
        else:
            clues[item[0]] = (item[1], item[2])
    answers: dict[str, list[tuple[str, str]]] = {}
    for item in _by_image(find_file(root, "FakeQA.json"), report):
        if isinstance(item, FakeChainError):
            yield item
            continue
        image_id, _, record = item
        for key, question in record.items():
            match = _DIMENSION.match(str(question)) if re.fullmatch(r"Q\d+", key) else None
            answer = record.get("A" + key[1:])
            if match and isinstance(answer, str) and answer.strip():
                answers.setdefault(image_id, []).append((match.group(1), clean_text(answer)))
    for n, (image_id, seen) in enumerate(labels.items()):
        if config.limit and n >= config.limit:
            break
        if seen.get("conflict"):
            continue
        entry = _entry(root, image_id, seen, clues.get(image_id), answers.get(image_id, []), labels_path, phrases)
        yield entry


def _entry(root, image_id, seen, clue, answers, labels_path, phrases) -> Entry | FakeChainError:
    label, index = seen["label"], seen["index"]
    file = str(labels_path)
    folder = f"{IMAGES}/{label}_images"
    other = f"{IMAGES}/{'real' if label == 'fake' else 'fake'}_images"
    if not (root / folder / image_id).is_file() and (root / other / image_id).is_file():
        return FakeChainError(f"labelled {label}, but the image is in {other}/", file=file, line=index, field="image")
    record = clue[1] if clue else {}
    category = record.get("content_categories") if isinstance(record.get("content_categories"), str) else None
    where = origin(DATASET, SPLIT, category)
    if label == "real":
        source = real_source(where, LICENSE)
    else:
        generator = record.get("generation_model") or image_id.split("-")[0]
        source = fake_source(str(generator), where, LICENSE)
    text = clean_text(str(record.get("telltale_clues") or ""))
    steps = sentences(text)
    given = []
    for category_name in _categories(record.get("telltale_categories")):
        name = phrases.alias(category_name)
        if name is None:
            message = f"telltale category {category_name!r} has no alias in phrases.yaml"
            clue_file = str(Path(file).with_name("FakeClue.json"))
            return FakeChainError(message, file=clue_file, line=clue[0], field="telltale_categories")
        naming = [s for s in steps if any(n == name for n, _ in phrases.match(s, "anomalous"))]
        if name not in (g[0] for g in given) and (naming or text):
            given.append((name, "anomalous", " ".join(naming) or text[:1200]))
    passages = [Passage(text, None, "anomalous")] if text else []
    for dimension, answer in answers:
        name = phrases.alias(dimension)
        verdict = phrases.polarity(answer)
        if name and verdict and name not in (g[0] for g in given):
            given.append((name, verdict, answer))
    return Entry(
        file=str(Path(file).with_name("FakeClue.json")) if clue else file,
        index=clue[0] if clue else index,
        id=make_id("fakebench", Path(image_id).stem),
        image=f"{folder}/{image_id}",
        label=label,
        source=source,
        label_source="FakeBench Evaluation/FakeClass.json: authenticity (0 = fake, 1 = real)",
        dataset=DATASET,
        text_kind=TEXT_KIND,
        text_author="human",
        passages=passages,
        given=given,
        reasoning=steps,
    )
