"""Map the sentences of a dataset's own explanations onto the forgery-attribute taxonomy, by phrases kept as data.

``phrases.yaml`` (next to this module) lists, per taxonomy attribute, the keywords that name it and the phrases that
carry a verdict by themselves, plus the cue words that make a sentence describe an anomaly or a natural trait, the
negations that turn a cue around, and aliases for datasets' own category names. ``--phrases extra.yaml`` adds to it
(same shape, validated by :class:`PhrasesSpec`; ``fakeinstruct schema phrases`` prints its JSON Schema).

A sentence is evidence for each attribute it names. Its verdict: the attribute's own verdict phrase when it has one
("waxy", "no halos"), else the sentence's cues (an anomalous cue wins over a natural one), else the verdict the
dataset gives every passage of that kind (LOKI's regions are all anomalies); with none of these the sentence is a
description, not evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from fakeinstruct.chain.taxonomy import Taxonomy, default_taxonomy
from fakeinstruct.errors import FakeInstructError

Phrase = Annotated[StrictStr, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=80)]
VERDICTS = ("anomalous", "natural")
_NEGATION_WINDOW = 3  # words before a cue that may negate it


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CueSpec(_Spec):
    """Words that decide a sentence's verdict when its attribute has no verdict phrase of its own."""

    anomalous: list[Phrase] = Field(default_factory=list, description="Cues of an anomaly: 'unnatural', 'odd'.")
    natural: list[Phrase] = Field(default_factory=list, description="Cues of a natural trait: 'realistic'.")
    negations: list[Phrase] = Field(
        default_factory=list, description="Words that turn a cue around when they come shortly before it: 'no'."
    )


class AttributePhrases(_Spec):
    """The phrases of one taxonomy attribute."""

    name: Annotated[StrictStr, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,47}$")] = Field(
        description="Attribute name from the taxonomy."
    )
    keywords: list[Phrase] = Field(default_factory=list, description="Words or phrases that name the attribute.")
    anomalous: list[Phrase] = Field(
        default_factory=list, description="Phrases that name the attribute and mean an anomaly by themselves."
    )
    natural: list[Phrase] = Field(
        default_factory=list, description="Phrases that name the attribute and mean a natural trait by themselves."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> AttributePhrases:
        if not (self.keywords or self.anomalous or self.natural):
            raise ValueError(f"attribute {self.name!r} lists no phrase")
        return self


class PhrasesSpec(_Spec):
    """A phrases file: cues, phrases per attribute (each attribute once) and category aliases."""

    version: StrictInt = Field(default=1, description="Version of the phrases file format.")
    cues: CueSpec = Field(default_factory=CueSpec)
    attributes: list[AttributePhrases] = Field(default_factory=list)
    aliases: dict[Phrase, StrictStr] = Field(
        default_factory=dict, description="A dataset's category name (lower case) -> taxonomy attribute."
    )

    @field_validator("attributes")
    @classmethod
    def _unique(cls, attributes: list[AttributePhrases]) -> list[AttributePhrases]:
        names = [a.name for a in attributes]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"attributes listed more than once: {', '.join(duplicated)}")
        return attributes


_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def tokens(text: str) -> list[str]:
    """Lower-case word tokens (hyphenated words are one token); "n't" reads as "not", a possessive 's is dropped."""
    text = text.lower().replace("\u2019", "'").replace("n't", " not").replace("'s", "")
    return _TOKEN.findall(text)


class _Index:
    """Phrases (as token sequences) found leftmost-longest in a token list: a dict lookup per token, not a regex
    alternation over hundreds of phrases (that one tried every phrase at every character)."""

    def __init__(self, phrases: Iterable[str]):
        self.by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for phrase in set(phrases):
            words = tuple(tokens(phrase))
            if words:
                self.by_first.setdefault(words[0], []).append((words, phrase))
        for candidates in self.by_first.values():
            candidates.sort(key=lambda c: -len(c[0]))

    def find(self, words: list[str]) -> list[tuple[int, str]]:
        """(start token index, phrase) of each non-overlapping match, left to right, longest first."""
        by_first, found, end = self.by_first, [], 0
        for i in [i for i, word in enumerate(words) if word in by_first]:  # most words start no phrase
            if i < end:
                continue
            for candidate, phrase in by_first[words[i]]:
                if len(candidate) == 1 or tuple(words[i : i + len(candidate)]) == candidate:
                    found.append((i, phrase))
                    end = i + len(candidate)
                    break
        return found


class Phrases:
    """The merged, compiled phrase data: :meth:`match` finds the attributes a sentence names, with verdicts."""

    def __init__(self, specs: list[PhrasesSpec], taxonomy: Taxonomy, files: list[str]):
        self.files = files
        keywords: dict[str, set[str]] = {}
        verdict_phrases: dict[str, dict[str, str]] = {}
        cues = {"anomalous": set(), "natural": set(), "negations": set()}
        self.aliases: dict[str, str] = {}
        for spec, file in zip(specs, files, strict=True):
            for kind in cues:
                cues[kind].update(getattr(spec.cues, kind))
            for attribute in spec.attributes:
                if attribute.name not in taxonomy:
                    raise FakeInstructError(
                        f"unknown attribute {attribute.name!r}; known: {', '.join(taxonomy.names)}",
                        file=file,
                        field="attributes",
                    )
                for phrase in attribute.keywords:
                    keywords.setdefault(phrase, set()).add(attribute.name)
                for verdict in VERDICTS:
                    for phrase in getattr(attribute, verdict):
                        keywords.setdefault(phrase, set()).add(attribute.name)
                        verdict_phrases.setdefault(phrase, {})[attribute.name] = verdict
            for alias, name in spec.aliases.items():
                if name not in taxonomy:
                    raise FakeInstructError(f"alias {alias!r} names unknown attribute {name!r}", file=file)
                self.aliases[alias] = name
        self._names = {phrase: tuple(sorted(names)) for phrase, names in keywords.items()}
        self._keywords = _Index(keywords)
        self._verdict_phrases = verdict_phrases
        self._specific = _Index(verdict_phrases)
        self._cue_verdict = {phrase: "natural" for phrase in cues["natural"]}
        self._cue_verdict.update({phrase: "anomalous" for phrase in cues["anomalous"]})
        self._cues = _Index(self._cue_verdict)
        negations = {" ".join(tokens(n)) for n in cues["negations"]}
        self._negations = {n for n in negations if n and " " not in n}
        self._negation_phrases = [n for n in negations if " " in n]
        self._order = {name: i for i, name in enumerate(taxonomy.names)}

    def rank(self, name: str) -> int:
        """An attribute's place in the taxonomy (records list attributes in that order)."""
        return self._order.get(name, len(self._order))

    def alias(self, category: str) -> str | None:
        """The taxonomy attribute a dataset's category name stands for (None when unknown)."""
        name = " ".join(category.lower().split())
        return self.aliases.get(name)

    def _negated(self, words: list[str], start: int) -> bool:
        """Whether one of the few words before ``words[start]`` negates it ("no halos", "not natural")."""
        window = words[max(0, start - _NEGATION_WINDOW) : start]
        if any(w in self._negations for w in window):
            return True
        tail = " ".join(window)
        return any(phrase in tail for phrase in self._negation_phrases)

    def _polarity(self, words: list[str]) -> str | None:
        found = set()
        for start, phrase in self._cues.find(words):
            verdict = self._cue_verdict[phrase]
            if self._negated(words, start):
                verdict = "natural" if verdict == "anomalous" else "anomalous"
            found.add(verdict)
        if "anomalous" in found:
            return "anomalous"
        return "natural" if found else None

    def polarity(self, sentence: str) -> str | None:
        """``"anomalous"``, ``"natural"`` or None: what the sentence's cues say (an anomaly wins)."""
        return self._polarity(tokens(sentence))

    def match(self, sentence: str, default: str | None = None) -> list[tuple[str, str]]:
        """The (attribute, verdict) pairs one sentence gives, in taxonomy order; ``default`` is the verdict of a
        sentence whose cues say nothing (None: such a sentence is not evidence)."""
        words = tokens(sentence)
        names: set[str] = set()
        for _, phrase in self._keywords.find(words):
            names.update(self._names[phrase])
        if not names:
            return []
        specific: dict[str, str] = {}
        for start, phrase in self._specific.find(words):
            flip = self._negated(words, start)
            for name, verdict in self._verdict_phrases[phrase].items():
                if flip:
                    verdict = "natural" if verdict == "anomalous" else "anomalous"
                # an anomaly named anywhere in the sentence outweighs a natural phrase of the same attribute
                if specific.get(name) != "anomalous":
                    specific[name] = verdict
        general = self._polarity(words) or default
        found = []
        for name in sorted(names, key=self.rank):
            verdict = specific.get(name) or general
            if verdict is not None:
                found.append((name, verdict))
        return found


def _read(path: Path | None) -> tuple[object, str]:
    if path is None:
        ref = resources.files("fakeinstruct.importers") / "phrases.yaml"
        return yaml.safe_load(ref.read_text(encoding="utf-8")), str(ref)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")), str(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise FakeInstructError(f"cannot read phrases: {err}", file=str(path)) from err


def _parse(data: object, file: str) -> PhrasesSpec:
    try:
        return PhrasesSpec.model_validate(data)
    except ValidationError as err:
        problem = err.errors(include_url=False)[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem["loc"]).lstrip(".") or None
        raise FakeInstructError(problem["msg"].removeprefix("Value error, "), file=file, field=where) from None


@lru_cache(maxsize=8)
def _load(extra: str | None, taxonomy: Taxonomy) -> Phrases:
    files = [None, Path(extra)] if extra else [None]
    specs, names = [], []
    for path in files:
        data, name = _read(path)
        specs.append(_parse(data, name))
        names.append(name)
    return Phrases(specs, taxonomy, names)


def load_phrases(extra: str | Path | None = None, taxonomy: Taxonomy | None = None) -> Phrases:
    """The built-in phrases, extended with the file ``extra`` when given, checked against ``taxonomy``."""
    taxonomy = taxonomy or default_taxonomy()
    return _load(str(extra) if extra else None, taxonomy)


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|\(\d+\))\s+")
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'\u201d)\]]*\s+(?=[\"'\u201c(\[]?[A-Z0-9])")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "approx.", "Mr.", "Mrs.", "Dr.", "St.", "No.")


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences: at line breaks (list bullets dropped) and after . ! ? before a capital."""
    out: list[str] = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        if not line:
            continue
        pieces = _BOUNDARY.split(line)
        merged: list[str] = []
        for piece in pieces:
            if merged and merged[-1].endswith(_ABBREVIATIONS):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        out += [p.strip() for p in merged if p.strip()]
    return out
