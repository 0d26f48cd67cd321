"""The shape of a template file, as a pydantic model: ``fakeinstruct schema template`` publishes its JSON Schema.

Field validators run in declaration order and see the fields before them (``info.data``), so each rule is checked
on the field it is about and a broken file names that field. What needs the compiled Jinja (which variables a
phrasing reads) is checked by :mod:`fakeinstruct.templating.registry` after this.
"""

from __future__ import annotations

from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from fakeinstruct.chain.schema import control_character
from fakeinstruct.errors import TemplateError
from fakeinstruct.templating.kinds import ANSWER_CLASSES, ATTRIBUTE_KINDS, FAMILIES, KINDS, REQUIRABLE
from fakeinstruct.yamldata import load_yaml

IMAGE_PLACEHOLDER = "<image>"


def _phrasing(text: str) -> str:
    if not text.strip():
        raise ValueError("expected a non-empty string")
    if IMAGE_PLACEHOLDER in text:
        raise ValueError("templates must not contain '<image>': the output format places the image")
    control = control_character(text)
    if control:  # as in FakeChain text: it would reach the training data
        raise ValueError(f"contains the control character {control}; phrasings may hold line breaks and tabs only")
    return text


Source = Annotated[StrictStr, AfterValidator(_phrasing), Field(description="A Jinja phrasing.")]
Phrasings = Annotated[list[Source], Field(min_length=1)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _phrasings(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    if len(set(values)) != len(values):
        raise ValueError("the same phrasing is listed twice")
    return values


class TurnSpec(_Spec):
    """One turn of a conversation: a template of ``family`` answers it, asked with its own question or ``questions``."""

    family: Literal["detection", "explanation", "attribute", "enhancement"]
    questions: Phrasings | None = Field(default=None, description="Follow-up questions of the conversation's own.")

    @field_validator("questions")
    @classmethod
    def _questions(cls, value, info: ValidationInfo):
        if value and info.data.get("family") == "detection":
            raise ValueError("a detection turn takes its question from its template: give it no questions")
        return _phrasings(value)


class TemplateSpec(_Spec):
    """An instruction template: a task family and kind, the variables it reads, and its phrasings (Jinja)."""

    family: Literal[FAMILIES] = Field(description="Task family.")  # type: ignore[valid-type]
    kind: StrictStr = Field(description="Template kind; which ones a family takes is in kinds.py.")
    name: StrictStr = Field(description="Unique name, '<family>.<name>'.")
    description: StrictStr = ""
    fields: list[StrictStr] = Field(default_factory=list, description="Every record or kind variable it reads.")
    requires: list[Literal[REQUIRABLE]] = Field(  # type: ignore[valid-type]
        default_factory=list, description="FakeChain fields that must be non-empty for the template to apply."
    )
    answer_words: dict[StrictStr, StrictStr] | None = Field(
        default=None, description="Closed kinds: the first word of the answer for each class."
    )
    choices: dict[Literal["fake", "real"], Phrasings] | None = Field(
        default=None, description="Choice kind: option texts per label."
    )
    questions: Phrasings | None = None
    questions_by_attribute: dict[StrictStr, Phrasings] | None = Field(
        default=None, description="Attribute kinds: extra questions for one attribute."
    )
    answers: Phrasings | None = None
    turns: list[TurnSpec] | None = Field(default=None, description="Conversation kind: its turns, at least two.")
    max_per_record: StrictInt = Field(default=3, ge=1, description="Attribute kinds: attributes asked per record.")

    @field_validator("kind")
    @classmethod
    def _kind(cls, kind: str, info: ValidationInfo) -> str:
        family = info.data.get("family")
        if family is not None and kind not in KINDS[family]:
            raise ValueError(f"kind {kind!r} is not one of {family}'s: {', '.join(KINDS[family])}")
        return kind

    @field_validator("name")
    @classmethod
    def _name(cls, name: str, info: ValidationInfo) -> str:
        family = info.data.get("family")
        if family is not None and not name.startswith(family + "."):
            raise ValueError(f"name {name!r} must start with its family, {family + '.'!r}")
        return name

    @field_validator("answer_words")
    @classmethod
    def _answer_words(cls, value, info: ValidationInfo):
        classes = ANSWER_CLASSES.get(info.data.get("kind"))
        if classes is None:
            if value is not None:
                raise ValueError(f"kind {info.data.get('kind')!r} takes no answer_words")
            return None
        if value is None or set(value) != set(classes):
            raise ValueError(f"expected a mapping with exactly the keys {' and '.join(classes)}")
        words = {k: v.strip() for k, v in value.items()}
        if any(not w or " " in w for w in words.values()) or len(set(words.values())) != 2:
            raise ValueError("answer words must be two different single words")
        return words

    @field_validator("choices")
    @classmethod
    def _choices(cls, value, info: ValidationInfo):
        if info.data.get("kind") != "choice":
            if value is not None:
                raise ValueError(f"kind {info.data.get('kind')!r} takes no choices")
            return None
        if value is None or set(value) != {"fake", "real"}:
            raise ValueError("expected a mapping with exactly the keys fake and real")
        return {label: [t.strip() for t in texts] for label, texts in value.items()}

    @field_validator("questions", "answers")
    @classmethod
    def _own_phrasings(cls, value, info: ValidationInfo):
        conversation = info.data.get("kind") == "conversation"
        if conversation and value is not None:
            raise ValueError("a conversation template asks through its turns")
        if not conversation and value is None:
            raise ValueError("expected a non-empty list of strings")
        return _phrasings(value)

    @field_validator("questions_by_attribute")
    @classmethod
    def _by_attribute(cls, value, info: ValidationInfo):
        if value is None:
            return None
        if info.data.get("kind") not in ATTRIBUTE_KINDS:
            raise ValueError(f"kind {info.data.get('kind')!r} takes no questions_by_attribute")
        from fakeinstruct.chain.taxonomy import default_taxonomy

        for name, phrasings in value.items():
            if name not in default_taxonomy():
                raise ValueError(f"unknown attribute {name!r}")
            _phrasings(phrasings)
        return value

    @field_validator("turns")
    @classmethod
    def _turns(cls, value, info: ValidationInfo):
        if info.data.get("kind") != "conversation":
            if value is not None:
                raise ValueError("only conversation templates have turns")
            return None
        if value is None or len(value) < 2:
            raise ValueError("a conversation needs a list of at least two turns")
        return value


def _field_path(loc: tuple) -> str | None:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or None


def spec_error(err: ValidationError, file: str, allowed: list[str]) -> TemplateError:
    """The first problem of ``err`` as a :class:`TemplateError` naming ``file`` and the field; unknown keys together."""
    problems = err.errors(include_url=False)
    extra = [p for p in problems if p["type"] == "extra_forbidden"]
    if extra:
        where = _field_path(extra[0]["loc"][:-1])
        names = ", ".join(str(p["loc"][-1]) for p in extra if p["loc"][:-1] == extra[0]["loc"][:-1])
        hint = f" (allowed: {', '.join(sorted(allowed))})" if where is None else ""
        return TemplateError(f"unknown keys: {names}{hint}", file=file, field=where)
    first = problems[0]
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "missing"
    return TemplateError(message, file=file, field=_field_path(first["loc"]))


def parse_spec(text: str, file: str) -> TemplateSpec:
    """Parse a template file's YAML text into a :class:`TemplateSpec`; any problem names ``file`` and the field."""
    try:
        data = load_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" on line {mark.line + 1}" if mark else ""
        raise TemplateError(f"YAML syntax error{where}: {getattr(err, 'problem', err)}", file=file) from err
    if not isinstance(data, dict):
        raise TemplateError("a template file must be a YAML mapping", file=file)
    try:
        return TemplateSpec.model_validate(data)
    except ValidationError as err:
        raise spec_error(err, file, list(TemplateSpec.model_fields)) from None
