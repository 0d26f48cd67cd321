"""The forgery-attribute taxonomy: which visual traces a FakeChain may annotate, loaded from YAML data."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from fakeinstruct.errors import TaxonomyError

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,47}$")
_REQUIRED = ("name", "title", "description", "natural", "anomalous", "advice")


@dataclass(frozen=True)
class AttributeSpec:
    """One forgery attribute: what it covers and what natural and anomalous look like."""

    name: str
    title: str
    description: str
    natural: str
    anomalous: str
    advice: str

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in _REQUIRED}


class Taxonomy:
    """An ordered, name-indexed set of :class:`AttributeSpec`."""

    def __init__(self, specs: Iterable[AttributeSpec]):
        self._specs: dict[str, AttributeSpec] = {}
        for spec in specs:
            self._specs[spec.name] = spec

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __getitem__(self, name: str) -> AttributeSpec:
        return self._specs[name]

    def __iter__(self):
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def names(self) -> list[str]:
        return list(self._specs)

    def extended(self, path: str | Path) -> Taxonomy:
        """A new taxonomy with the attributes of ``path`` added; redefining a built-in name is an error."""
        extra = _load_file(Path(path))
        for spec in extra:
            if spec.name in self._specs:
                raise TaxonomyError(f"attribute {spec.name!r} is already defined", file=str(path), field="name")
        return Taxonomy([*self, *extra])


def _load_file(path: Path) -> list[AttributeSpec]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise TaxonomyError(f"cannot read taxonomy: {err}", file=str(path)) from err
    return _parse(data, str(path))


def _parse(data: object, file: str) -> list[AttributeSpec]:
    if not isinstance(data, dict) or not isinstance(data.get("attributes"), list):
        raise TaxonomyError("expected a mapping with an 'attributes' list", file=file)
    specs, seen = [], set()
    for i, entry in enumerate(data["attributes"]):
        field = f"attributes[{i}]"
        if not isinstance(entry, dict):
            raise TaxonomyError("expected a mapping", file=file, field=field)
        missing = [k for k in _REQUIRED if not isinstance(entry.get(k), str) or not entry[k].strip()]
        if missing:
            raise TaxonomyError(f"missing or empty: {', '.join(missing)}", file=file, field=field)
        unknown = sorted(set(entry) - set(_REQUIRED))
        if unknown:
            raise TaxonomyError(f"unknown keys: {', '.join(unknown)}", file=file, field=field)
        if not _NAME.match(entry["name"]):
            raise TaxonomyError(f"name {entry['name']!r} must match {_NAME.pattern}", file=file, field=field)
        if entry["name"] in seen:
            raise TaxonomyError(f"duplicate attribute {entry['name']!r}", file=file, field=field)
        seen.add(entry["name"])
        specs.append(AttributeSpec(**{k: entry[k].strip() for k in _REQUIRED}))
    return specs


@lru_cache(maxsize=1)
def default_taxonomy() -> Taxonomy:
    """The built-in taxonomy shipped as ``fakeinstruct/chain/taxonomy.yaml``."""
    ref = resources.files("fakeinstruct.chain") / "taxonomy.yaml"
    return Taxonomy(_parse(yaml.safe_load(ref.read_text(encoding="utf-8")), str(ref)))


def load_taxonomy(extra: str | Path | None = None) -> Taxonomy:
    """The built-in taxonomy, extended with ``extra`` when given."""
    base = default_taxonomy()
    return base.extended(extra) if extra else base
