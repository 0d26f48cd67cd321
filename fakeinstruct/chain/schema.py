"""The FakeChain record: one image's authenticity reasoning chain, as a versioned pydantic schema."""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fakeinstruct.chain.taxonomy import Taxonomy, default_taxonomy
from fakeinstruct.chain.verdict import evidence_decides, evidence_label

SCHEMA_VERSION = "1.1"
# Records of earlier versions stay valid: 1.1 only added optional provenance fields.
SCHEMA_VERSIONS = ("1.0", "1.1")
IMAGE_PLACEHOLDER = "<image>"


# C0 and C1 control characters and DEL; line breaks and tabs are text. The names of the usual ones, for the message.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "BS", 0x09: "TAB", 0x0A: "LF", 0x0C: "FF", 0x0D: "CR", 0x1B: "ESC"}
_CONTROL_NAMES[0x7F] = "DEL"


def control_character(text: str, *, line_breaks: bool = True) -> str | None:
    """The first control character of ``text``, as ``U+0007 (BEL)``, else None; line breaks (LF) and tabs count
    only without ``line_breaks``."""
    found = (_CONTROL if line_breaks else _ANY_CONTROL).search(text)
    if found is None:
        return None
    code = ord(found.group())
    name = _CONTROL_NAMES.get(code)
    return f"U+{code:04X}" + (f" ({name})" if name else "")


def _plain_text(text: str) -> str:
    # Annotation text is free prose, but a literal image placeholder would be expanded into image tokens by
    # every LLaVA-style processor and shift the image count; it is rejected wherever text is accepted. Control
    # characters (NUL, BEL, ESC and its terminal sequences ...) are rejected rather than stripped: they come from a
    # broken export or are meant to mislead whoever reads the text in a terminal, and the record says which.
    if IMAGE_PLACEHOLDER in text:
        raise ValueError(f"contains the image placeholder {IMAGE_PLACEHOLDER!r}")
    control = control_character(text)
    if control:
        raise ValueError(
            f"contains the control character {control}; text may hold line breaks and tabs, no other control character"
        )
    return text


# Scalars are strict: lax pydantic would read "severity": "0.8" as 0.8, true as 1.0 and [0.0, "0", 64, 64] as a
# region, hiding a broken export or a hand edit. Enums, literals and containers stay lax, because records are
# validated from parsed JSON: a strict enum or tuple would refuse the plain strings and lists JSON gives.
Text = Annotated[
    str,
    Strict(),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=4000),
    AfterValidator(_plain_text),
]
ShortText = Annotated[
    str,
    Strict(),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_plain_text),
]
Severity = Annotated[float, Strict(), Field(ge=0.0, le=1.0, allow_inf_nan=False)]
# The annotation text of one record (evidence, measurements, reasoning, conclusion, enhancement) together. A built-in
# template may quote all of it in one answer, with a title and advice per attribute: at this size the longest answer
# stays well under the 20,000 characters an answer may have, so that a valid record never fails generation.
MAX_TEXT_CHARS = 12_000
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class Label(str, Enum):
    real = "real"
    fake = "fake"


class GeneratorFamily(str, Enum):
    real_camera = "real-camera"
    gan = "gan"
    gan_super_resolution = "gan-super-resolution"
    diffusion = "diffusion"
    autoregressive = "autoregressive"
    inpainting = "inpainting"
    face_swap = "face-swap"
    other = "other"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)


class Source(_Strict):
    """Where the image comes from."""

    generator: ShortText = Field(description="Generator name, e.g. 'stable-diffusion-xl'; 'camera' for real photos.")
    family: GeneratorFamily = Field(description="Generator family; 'real-camera' for real photos.")
    origin: ShortText = Field(description="Dataset or collection the image comes from.")
    license: ShortText = Field(description="License of the image (SPDX id or a short statement).")
    group: ShortText | None = Field(
        default=None,
        description="Split group: records sharing it (e.g. crops of one photo) always land in the same split.",
    )
    author: ShortText | None = Field(default=None, description="Author or rights holder, for attribution.")


class Attribute(_Strict):
    """Visual trace evidence for one forgery attribute of the taxonomy."""

    name: ShortText = Field(description="Attribute name from the forgery-attribute taxonomy, e.g. 'texture'.")
    verdict: Literal["anomalous", "natural"] = Field(description="Whether this attribute looks anomalous or natural.")
    evidence: Text = Field(description="What is seen, in a sentence or two, specific to this image.")
    measurement: Text | None = Field(
        default=None, description="A machine measurement that supports the verdict, e.g. from `fakeinstruct draft`."
    )
    region: tuple[StrictInt, StrictInt, StrictInt, StrictInt] | None = Field(
        default=None, description="Where the evidence is: [x0, y0, x1, y1] in pixels, x1 and y1 exclusive."
    )
    severity: Severity | None = Field(default=None, description="How strong the trace is, 0..1.")

    @field_validator("name")
    @classmethod
    def _known_name(cls, name: str, info: ValidationInfo) -> str:
        taxonomy: Taxonomy = (info.context or {}).get("taxonomy") or default_taxonomy()
        if name not in taxonomy:
            raise ValueError(f"unknown attribute {name!r}; known: {', '.join(taxonomy.names)}")
        return name

    @field_validator("region")
    @classmethod
    def _ordered_region(cls, region):
        if region is not None:
            x0, y0, x1, y1 = region
            if min(region) < 0 or x1 <= x0 or y1 <= y0:
                raise ValueError(f"region {list(region)} must be [x0, y0, x1, y1] with 0 <= x0 < x1 and 0 <= y0 < y1")
        return region


class Provenance(_Strict):
    """Who wrote which part of the record."""

    annotation: Literal["human", "machine", "human+machine"] = Field(description="Who wrote the annotation overall.")
    label_source: ShortText = Field(description="Where the real/fake label comes from, e.g. 'generation pipeline'.")
    drafted_by: ShortText | None = Field(default=None, description="Tool or model that drafted text, with version.")
    reviewed_by: ShortText | None = Field(default=None, description="Who reviewed the draft against the image.")
    machine_fields: list[ShortText] = Field(default_factory=list, description="Fields whose text a machine wrote.")
    reviewed_fields: list[ShortText] = Field(default_factory=list, description="Fields a reviewer checked or rewrote.")
    blind: bool | None = Field(
        default=None, description="True when the review was done without seeing the label or the source."
    )
    reviewer_call: Literal["real", "fake", "unsure"] | None = Field(
        default=None, description="The reviewer's own real/fake call, made blind, kept apart from the label."
    )
    evidence_decides_label: bool | None = Field(
        default=None,
        description="Whether the verdicts point to the label by the fixed rule (fakeinstruct.chain.verdict); "
        "records whose evidence does not decide their label say so in their conclusion.",
    )
    review_flags: list[ShortText] = Field(default_factory=list, description="What the reviewer flagged.")


class FakeChain(_Strict):
    """One image's authenticity reasoning chain: label, per-attribute evidence, reasoning and conclusion.

    Its annotation text (evidence, measurements, reasoning, conclusion, enhancement) totals at most 12,000 characters.
    """

    schema_version: Literal["1.0", "1.1"] = Field(description="FakeChain schema version.")
    id: Annotated[str, Strict()] = Field(description="Unique record id: letters, digits and . _ : - (at most 128).")
    image: Annotated[str, Strict()] = Field(description="Image path relative to the dataset root, '/'-separated.")
    label: Label = Field(description="Ground truth: 'real' or 'fake'.")
    source: Source
    attributes: list[Attribute] = Field(min_length=1, description="Evidence per forgery attribute, one entry each.")
    reasoning: list[Text] = Field(min_length=1, description="Ordered steps from the evidence to the verdict.")
    conclusion: Text = Field(description="One paragraph that states the verdict and why.")
    enhancement: list[Text] = Field(
        default_factory=list, description="Actionable advice on what would make the flagged artifacts disappear."
    )
    provenance: Provenance

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(f"id {value!r} must match {_ID.pattern}")
        return value

    @field_validator("image")
    @classmethod
    def _relative_image(cls, value: str) -> str:
        control = control_character(value, line_breaks=False)
        if control:
            raise ValueError(f"image {value!r} contains the control character {control}")
        if not value or value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value) or "\\" in value:
            raise ValueError(f"image {value!r} must be a '/'-separated path relative to the dataset root")
        if any(part in ("", ".", "..") for part in value.split("/")):
            raise ValueError(f"image {value!r} must not contain empty, '.' or '..' parts")
        return value

    @field_validator("attributes")
    @classmethod
    def _unique_attributes(cls, attributes: list[Attribute]) -> list[Attribute]:
        names = [a.name for a in attributes]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"attributes listed more than once: {', '.join(duplicated)}")
        return attributes

    @model_validator(mode="after")
    def _consistent(self) -> FakeChain:
        decides = self.provenance.evidence_decides_label
        if decides is not None and decides != evidence_decides(self.attributes, self.label):
            raise ValueError(
                f"provenance.evidence_decides_label is {str(decides).lower()}, but by the fixed rule the verdicts "
                f"point to {evidence_label(self.attributes)!r} and the label is {self.label!r}"
            )
        anomalous = any(a.verdict == "anomalous" for a in self.attributes)
        if self.label == Label.fake.value and not anomalous and decides is not False:
            raise ValueError(
                "a fake image needs at least one attribute with verdict 'anomalous' as evidence, or "
                "provenance.evidence_decides_label: false to say its evidence does not show it"
            )
        texts = [*self.reasoning, self.conclusion, *self.enhancement]
        texts += [text for a in self.attributes for text in (a.evidence, a.measurement) if text]
        total = sum(map(len, texts))
        if total > MAX_TEXT_CHARS:
            raise ValueError(
                f"the annotation text totals {total} characters, over the limit of {MAX_TEXT_CHARS}: an answer that"
                " quotes it would be too long"
            )
        is_real_source = self.source.family == GeneratorFamily.real_camera.value
        if is_real_source != (self.label == Label.real.value):
            raise ValueError(f"label {self.label!r} disagrees with source.family {self.source.family!r}")
        return self

    def to_data(self) -> dict[str, Any]:
        """The record as JSON data, fields left unset omitted: what generation expands (see ``generation.plan``)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @property
    def group(self) -> str:
        """The split group: ``source.group`` when given, else the image itself."""
        return self.source.group or self.image


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a FakeChain record."""
    schema = FakeChain.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://fakescope-kit/schemas/fakechain-{SCHEMA_VERSION}.json"
    return schema
