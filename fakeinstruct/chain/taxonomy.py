"""The forgery-attribute taxonomy: which visual traces a FakeChain may annotate, loaded from YAML data."""

from __future__ import annotations

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
)

from fakeinstruct.errors import TaxonomyError
from fakeinstruct.yamldata import load_yaml

Prose = Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=1)]


class AttributeSpec(BaseModel):
    """One forgery attribute: what it covers and what natural and anomalous look like."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[StrictStr, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,47}$")] = Field(
        description="Attribute name used in FakeChain records."
    )
    title: Prose = Field(description="How templates name it, e.g. 'Edges and contours'.")
    description: Prose = Field(description="What the attribute covers.")
    natural: Prose = Field(description="What it looks like in a camera photograph.")
    anomalous: Prose = Field(description="What a generator trace looks like.")
    advice: Prose = Field(description="What would make an anomaly disappear (the enhancement fallback).")


class TaxonomySpec(BaseModel):
    """A taxonomy file: its attributes, each name once. ``fakeinstruct schema taxonomy`` publishes its JSON Schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: StrictInt = Field(default=1, description="Version of the taxonomy file format.")
    attributes: list[AttributeSpec]

    @field_validator("attributes")
    @classmethod
    def _unique(cls, attributes: list[AttributeSpec]) -> list[AttributeSpec]:
        seen = set()
        for spec in attributes:
            if spec.name in seen:
                raise ValueError(f"duplicate attribute {spec.name!r}")
            seen.add(spec.name)
        return attributes


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
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" on line {mark.line + 1}" if mark else ""
        raise TaxonomyError(
            f"cannot read taxonomy: YAML error{where}: {getattr(err, 'problem', err)}", file=str(path)
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise TaxonomyError(f"cannot read taxonomy: {err}", file=str(path)) from err
    return _parse(data, str(path))


def _parse(data: object, file: str) -> list[AttributeSpec]:
    try:
        return TaxonomySpec.model_validate(data).attributes
    except ValidationError as err:
        problem = err.errors(include_url=False)[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem["loc"]).lstrip(".") or None
        message = problem["msg"].removeprefix("Value error, ")
        raise TaxonomyError(message, file=file, field=where) from None


@lru_cache(maxsize=1)
def default_taxonomy() -> Taxonomy:
    """The built-in taxonomy shipped as ``fakeinstruct/chain/taxonomy.yaml``."""
    ref = resources.files("fakeinstruct.chain") / "taxonomy.yaml"
    return Taxonomy(_parse(load_yaml(ref.read_text(encoding="utf-8")), str(ref)))


def load_taxonomy(extra: str | Path | None = None) -> Taxonomy:
    """The built-in taxonomy, extended with ``extra`` when given."""
    base = default_taxonomy()
    return base.extended(extra) if extra else base
