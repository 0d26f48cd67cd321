"""What every importer shares: the entry an importer reads, the FakeChain record built from it, the summary.

An importer reads its dataset's files into :class:`Entry` objects (one per image, in source order) or, for a source
record it cannot use, a :class:`~fakeinstruct.errors.FakeChainError` naming the source file, the record's index in it
(0-based, as the file lists them) and the field. :func:`build_record` maps an entry's text onto the taxonomy with
:mod:`fakeinstruct.importers.phrases` and writes the record; an entry with nothing to take evidence from is drafted
from its image instead (:mod:`fakeinstruct.importers.run`).

Conventions of imported records:

- ``source.origin`` is ``<dataset>/<split>[/<category>]``, e.g. ``FakeClue/train/animal``: the dataset's own split
  (``train``, ``validation`` or ``test``) and category. ``fakeinstruct generate --split_from source.origin`` keeps
  that split.
- ``source.generator`` is the dataset's own name for the generator (``unknown`` where it gives none, ``camera`` for
  real images); ``source.family`` is looked up from that name (:func:`generator_family`).
- ``provenance``: ``label_source`` names the file and field the label comes from; ``drafted_by`` says which fields
  are quoted from the source text and which the importer inferred (attribute names and verdicts, by phrase matching);
  ``machine_fields`` lists every field a machine wrote: the inferred ones, and the quoted ones too when the dataset's
  text was itself machine-written (FakeClue); ``evidence_decides_label`` is set by the fixed rule of
  :mod:`fakeinstruct.chain.verdict`, and a record whose evidence does not decide its label gets a conclusion that
  says so, written by the importer.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fakeinstruct import __version__
from fakeinstruct.chain import IMAGE_PLACEHOLDER, SCHEMA_VERSION
from fakeinstruct.chain.origin import category_of, split_named_in
from fakeinstruct.chain.taxonomy import Taxonomy
from fakeinstruct.chain.verdict import evidence_decides
from fakeinstruct.errors import FakeChainError
from fakeinstruct.importers.phrases import Phrases, sentences

MAX_EVIDENCE_CHARS = 1200
SHORTCUT_MARGIN = 0.05
_FORMATS = {"jpg": "jpeg", "jpeg": "jpeg", "jpe": "jpeg", "tif": "tiff", "tiff": "tiff"}
MAX_REASONING_STEPS = 16
_ID_CHARS = re.compile(r"[^A-Za-z0-9._:-]+")

# A dataset's generator name -> family; the first pattern that matches the lower-cased name wins.
_FAMILIES = [
    (r"real[-_ ]?esrgan|esrgan|super[-_ ]?resolution", "gan-super-resolution"),
    (r"deepfakes?\b|faceswap|face[-_ ]?swap|face2face|neural[-_ ]?textures|faceshifter|simswap|ff\+\+", "face-swap"),
    (r"inpaint", "inpainting"),
    (r"gan\b|gan[-_ ]|stylegan|progan|biggan|cyclegan|gaugan|stargan|fusedream|vqgan", "gan"),
    (r"cogview|parti\b|dall[-_ ]?e(?![-_ ]?[23])|dalle(?![23])", "autoregressive"),
    (
        r"diffusion|\bsd(?:xl|v?[-_ ]?\d)?\b|sdxl|\badm\b|glide|midjourney|dall[-_ ]?e[-_ ]?[23]|dalle[23]|vqdm|"
        r"wukong|imagen|flux|kandinsky|firefly|latent|ldm|playground|pixart|dit\b",
        "diffusion",
    ),
]


def generator_family(name: str) -> str:
    """The generator family of a dataset's generator name (``"other"`` when the name says nothing)."""
    lowered = name.lower()
    for pattern, family in _FAMILIES:
        if re.search(pattern, lowered):
            return family
    return "other"


def real_source(origin: str, license: str, group: str | None = None) -> dict:
    return _source("camera", "real-camera", origin, license, group)


def fake_source(generator: str | None, origin: str, license: str, group: str | None = None) -> dict:
    generator = (generator or "").strip() or "unknown"
    return _source(generator, generator_family(generator), origin, license, group)


def _source(generator, family, origin, license, group) -> dict:
    source = {"generator": generator[:200], "family": family, "origin": origin[:200], "license": license[:200]}
    if group:
        source["group"] = group[:200]
    return source


def make_id(*parts: str) -> str:
    """A FakeChain id from ``parts``: letters, digits and . _ : - only, at most 128 characters."""
    text = ".".join(_ID_CHARS.sub("-", str(p)).strip("-.") for p in parts if str(p))
    text = text.lstrip("._:-") or "record"
    if len(text) > 128:
        import hashlib

        text = f"{text[:100]}.{hashlib.sha1(text.encode()).hexdigest()[:16]}"
    return text


def read_json(path: Path):
    """A JSON file in UTF-8 (BOM or not) or UTF-16 (as LOKI's open-ended file is), parsed."""
    import orjson

    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return orjson.loads(raw.decode("utf-16").encode("utf-8"))
    if raw[:3] == b"\xef\xbb\xbf":
        raw = raw[3:]
    elif len(raw) >= 2 and (raw[0] == 0) != (raw[1] == 0):  # UTF-16 without a BOM
        return orjson.loads(raw.decode("utf-16-be" if raw[0] == 0 else "utf-16-le").encode("utf-8"))
    return orjson.loads(raw)


def clean_text(text: str) -> str:
    """Source text without image placeholders (a tokenizer artefact, never content) and with single spaces."""
    lines = [" ".join(line.replace(IMAGE_PLACEHOLDER, " ").split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()


@dataclass
class Passage:
    """A piece of the source text that may carry evidence.

    ``region`` is where it applies, ``[x, y, width, height]`` in pixels as the source gives it; ``verdict`` is the
    verdict the dataset gives every passage of its kind (LOKI's regions all describe anomalies), used for a sentence
    whose cues say nothing.
    """

    text: str
    region: tuple[float, float, float, float] | None = None
    verdict: str | None = None


@dataclass
class Entry:
    """One image of a dataset, as its importer read it: what its FakeChain record is built from."""

    file: str  # the source file, for errors
    index: int  # the source record's index in that file (0-based)
    id: str
    image: str  # relative to the dataset root
    label: str
    source: dict
    label_source: str
    dataset: str
    text_kind: str = ""  # what the source text is, e.g. "the FakeClue explanation"
    text_author: str = "human"  # who wrote the source text: human or machine
    passages: list[Passage] = field(default_factory=list)
    # evidence the source gives per attribute: (taxonomy name, verdict, evidence text)
    given: list[tuple[str, str, str]] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)  # steps quoted from the source ([] = its sentences)
    conclusion: str | None = None  # quoted from the source (None = written by the importer)

    def error(self, message: str, field_name: str | None = None) -> FakeChainError:
        return FakeChainError(message, file=self.file, line=self.index, field=field_name)


def _titles(names: list[str], taxonomy: Taxonomy) -> str:
    titles = [taxonomy[n].title if n in taxonomy else n.replace("_", " ") for n in names]
    return titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]


def _region(box, size: tuple[int, int] | None) -> tuple[int, int, int, int] | None:
    """``[x, y, w, h]`` (floats) -> ``[x0, y0, x1, y1]`` pixels, clipped to the image; None when nothing is left."""
    if box is None or size is None:
        return None
    x, y, w, h = box
    width, height = size
    x0, y0 = max(0, math.floor(x)), max(0, math.floor(y))
    x1, y1 = min(width, math.ceil(x + w)), min(height, math.ceil(y + h))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _union(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _evidence(texts: list[str]) -> str:
    out, seen = [], set()
    for text in texts:
        if text not in seen and (not out or len(" ".join(out)) + len(text) < MAX_EVIDENCE_CHARS):
            seen.add(text)
            out.append(text)
    return " ".join(out)


def map_attributes(entry: Entry, phrases: Phrases, size: tuple[int, int] | None) -> list[dict]:
    """The entry's attributes: its given ones, then those its passages' sentences name, in taxonomy order.

    An attribute named both anomalous and natural is anomalous (a named anomaly is evidence); its evidence is the
    sentences of that verdict; its region the union of the regions of those passages.
    """
    found: dict[str, dict[str, list]] = {}  # name -> verdict -> [(sentence, region)]
    for passage in entry.passages:
        region = _region(passage.region, size)
        for sentence in sentences(passage.text):
            for name, verdict in phrases.match(sentence, passage.verdict):
                found.setdefault(name, {}).setdefault(verdict, []).append((sentence, region))
    given = {name: (verdict, text) for name, verdict, text in entry.given}
    attributes = []
    for name in sorted(set(found) | set(given), key=phrases.rank):
        if name in given:
            verdict, text = given[name]
            hits = found.get(name, {}).get(verdict, [])
        else:
            verdict = "anomalous" if "anomalous" in found[name] else "natural"
            hits = found[name][verdict]
            text = _evidence([sentence for sentence, _ in hits])
        attribute = {"name": name, "verdict": verdict, "evidence": text}
        box = None
        for _, region in hits:
            box = _union(box, region)
        if box is not None:
            attribute["region"] = list(box)
        attributes.append(attribute)
    return attributes


def _reasoning(entry: Entry) -> list[str]:
    if entry.reasoning:
        return entry.reasoning[:MAX_REASONING_STEPS]
    steps, seen = [], set()
    for passage in entry.passages:
        for sentence in sentences(passage.text):
            if sentence not in seen:
                seen.add(sentence)
                steps.append(sentence)
    return steps[:MAX_REASONING_STEPS]


def _conclusion(entry: Entry, attributes: list[dict], decided: bool, taxonomy: Taxonomy) -> str:
    """The importer's conclusion: the source gives none, or its own does not follow from the evidence by the rule."""
    anomalous = [a["name"] for a in attributes if a["verdict"] == "anomalous"]
    natural = [a["name"] for a in attributes if a["verdict"] == "natural"]
    what, dataset = entry.text_kind or f"{entry.dataset}'s text", entry.dataset
    if entry.label == "fake" and decided:
        return f"The image is AI-generated: according to {what}, the {_titles(anomalous, taxonomy)} show generator traces."
    if entry.label == "fake":
        return (
            f"{dataset} labels this image AI-generated, but according to {what} no trait is anomalous enough to "
            f"decide it by the fixed rule, so the label rests on {dataset} alone."
        )
    if decided and natural:
        return f"The image is a real photograph: according to {what}, the {_titles(natural, taxonomy)} look natural."
    if decided:
        return f"The image is a real photograph: according to {what}, nothing shows a generator trace."
    return (
        f"{dataset} labels this image a real photograph, although according to {what} the "
        f"{_titles(anomalous, taxonomy)} look anomalous; by the fixed rule they would point to a generator, so the "
        f"label rests on {dataset} alone."
    )


def build_record(entry: Entry, phrases: Phrases, taxonomy: Taxonomy, size: tuple[int, int] | None) -> dict | None:
    """The FakeChain record of ``entry`` as JSON data, or None when its source gives no evidence at all."""
    attributes = map_attributes(entry, phrases, size)
    if not attributes:
        return None
    decided = evidence_decides(attributes, entry.label)
    reasoning = _reasoning(entry)
    quoted = ["attributes.evidence"]
    machine = ["attributes.name", "attributes.verdict"]
    if entry.reasoning or reasoning:
        quoted.append("reasoning")
    if not reasoning:
        reasoning = [a["evidence"] for a in attributes]
    if entry.conclusion and decided:
        conclusion = entry.conclusion
        quoted.append("conclusion")
    else:
        conclusion = _conclusion(entry, attributes, decided, taxonomy)
        machine.append("conclusion")
    if entry.text_author == "machine":
        machine = sorted(set(machine) | set(quoted))
    drafted_by = (
        f"fakeinstruct import {__version__}: attribute names and verdicts inferred by phrase matching; "
        f"{', '.join(quoted)} quoted from {entry.text_kind or entry.dataset}"
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "id": entry.id,
        "image": entry.image,
        "label": entry.label,
        "source": entry.source,
        "attributes": attributes,
        "reasoning": reasoning,
        "conclusion": conclusion,
        "provenance": {
            "annotation": "machine" if entry.text_author == "machine" else "human+machine",
            "label_source": entry.label_source[:200],
            "drafted_by": drafted_by[:200],
            "machine_fields": machine,
            "evidence_decides_label": decided,
        },
    }


@dataclass
class ImportReport:
    """What an import wrote and what it rejected (each rejection as file:index: field: message)."""

    format: str
    root: Path
    out: Path
    records: int = 0
    rejected: int = 0
    drafted: int = 0
    undecided: int = 0  # records whose evidence does not decide their label (fixed rule)
    errors: list[FakeChainError] = field(default_factory=list)
    per_split: Counter = field(default_factory=Counter)
    per_label: Counter = field(default_factory=Counter)
    per_category: Counter = field(default_factory=Counter)
    per_format: Counter = field(default_factory=Counter)  # (file format, label) -> records
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add_error(self, error: FakeChainError) -> None:
        self.rejected += 1
        self.errors.append(error)

    def count(self, origin_: str, label: str, decides: bool | None, image: str) -> None:
        """Count one written record by its ``source.origin``, label, ``evidence_decides_label`` and file format."""
        self.records += 1
        suffix = image.rpartition(".")[2].lower()
        self.per_format[(_FORMATS.get(suffix, suffix), label)] += 1
        self.per_split[split_named_in(origin_) or "(none)"] += 1
        self.per_label[label] += 1
        self.per_category[category_of(origin_) or "(none)"] += 1
        if decides is False:
            self.undecided += 1

    def format_shortcut(self) -> dict:
        """How well the file format alone predicts the label, against always guessing the majority label.

        DESIGN.md's science protocol: a dataset whose classes come in different formats (LOKI's and FakeBench's fakes
        are mostly PNG, their real images mostly JPEG) teaches a detector the format unless both classes are put
        through the same post-processing; the import reports it (``flagged`` when the format beats the majority
        guess by :data:`SHORTCUT_MARGIN` or more).
        """
        total = sum(self.per_format.values())
        if not total:
            return {"accuracy_from_format": None, "majority_baseline": None, "flagged": False}
        formats = {f for f, _ in self.per_format}
        by_format = sum(max(self.per_format[(f, "fake")], self.per_format[(f, "real")]) for f in formats)
        majority = max(self.per_label.values())
        accuracy, baseline = by_format / total, majority / total
        return {
            "accuracy_from_format": round(accuracy, 4),
            "majority_baseline": round(baseline, 4),
            "flagged": accuracy - baseline >= SHORTCUT_MARGIN,
        }

    def summary(self, max_errors: int = 100) -> dict:
        return {
            "format": self.format,
            "root": str(self.root),
            "out": str(self.out),
            "records": self.records,
            "rejected": self.rejected,
            "drafted": self.drafted,
            "evidence_does_not_decide_label": self.undecided,
            "per_split": dict(sorted(self.per_split.items())),
            "per_label": dict(sorted(self.per_label.items())),
            "per_category": dict(sorted(self.per_category.items())),
            "per_format": {f"{fmt}/{label}": n for (fmt, label), n in sorted(self.per_format.items())},
            "format_shortcut": self.format_shortcut(),
            "files": self.files,
            "seconds": round(self.seconds, 2),
            "errors": [str(e) for e in self.errors[:max_errors]],
            "fakeinstruct_version": __version__,
        }
