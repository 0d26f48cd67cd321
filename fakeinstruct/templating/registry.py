"""The template registry: instruction templates are YAML + Jinja data files, validated when they load.

Built-in templates live in ``fakeinstruct/templates/<family>/``; third-party packs register a folder through
the ``fakeinstruct.templates`` entry-point group. Every template is compiled once, here, and checked by
rendering it on built-in probe records, so that a broken template fails at load time with its file name.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from types import ModuleType

import yaml
from jinja2 import TemplateSyntaxError, meta

from fakeinstruct.errors import TemplateError
from fakeinstruct.templating.engine.sandbox import environment, render, with_globals
from fakeinstruct.templating.variables import KIND_FIELDS, RECORD_FIELDS

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fakeinstruct.templates"
FAMILIES = ("detection", "explanation", "attribute", "enhancement", "multi_turn")
KINDS = {
    "detection": ("closed", "choice"),
    "explanation": ("free",),
    "attribute": ("per_attribute", "attribute_closed", "listing"),
    "enhancement": ("free",),
    "multi_turn": ("conversation",),
}
# Variables a kind adds to the record's own.
KIND_VARIABLES = {
    "closed": {"answer"},
    "choice": {"answer", "options"},
    "per_attribute": {"attribute"},
    "attribute_closed": {"attribute", "answer"},
    "conversation": {"attribute"},
}
# The classes whose answer words a closed kind declares: (positive, negative).
ANSWER_CLASSES = {"closed": ("fake", "real"), "attribute_closed": ("anomalous", "natural")}
ATTRIBUTE_KINDS = ("per_attribute", "attribute_closed")
REQUIRABLE = ("enhancement", "reasoning", "attributes")
KEYS = {
    "name",
    "family",
    "kind",
    "description",
    "fields",
    "requires",
    "answer_words",
    "choices",
    "questions",
    "questions_by_attribute",
    "answers",
    "turns",
    "max_per_record",
}
assert set(KIND_FIELDS) == set().union(*KIND_VARIABLES.values())


@dataclass(frozen=True)
class Phrasing:
    source: str
    compiled: object = field(compare=False, repr=False)
    static: str | None = None  # the rendered text, when the phrasing uses no variable


@dataclass(frozen=True)
class Turn:
    family: str
    questions: tuple[Phrasing, ...] = ()


@dataclass(frozen=True)
class Template:
    name: str
    family: str
    kind: str
    file: str
    pack: str
    description: str = ""
    fields: frozenset[str] = frozenset()
    requires: tuple[str, ...] = ()
    answer_words: dict[str, str] | None = None
    choices: dict[str, tuple[str, ...]] | None = None
    questions: tuple[Phrasing, ...] = ()
    questions_by_attribute: dict[str, tuple[Phrasing, ...]] = field(default_factory=dict)
    answers: tuple[Phrasing, ...] = ()
    turns: tuple[Turn, ...] = ()
    max_per_record: int = 3

    @property
    def is_closed(self) -> bool:
        return self.kind in ANSWER_CLASSES or self.kind == "choice"

    def phrasing_count(self) -> int:
        per_attr = sum(len(v) for v in self.questions_by_attribute.values())
        return len(self.questions) + per_attr + sum(len(t.questions) for t in self.turns)


class _Loader:
    """Parses one template file into a :class:`Template`, raising :class:`TemplateError` with its name."""

    def __init__(self, path: Path, pack: str):
        self.path, self.pack, self.file = path, pack, str(path)
        self.used: set[str] = set()

    def error(self, message: str, field_name: str | None = None) -> TemplateError:
        return TemplateError(message, file=self.file, field=field_name)

    def compile(self, source: object, field_name: str) -> Phrasing:
        if not isinstance(source, str) or not source.strip():
            raise self.error("expected a non-empty string", field_name)
        if "<image>" in source:
            raise self.error("templates must not contain '<image>': the output format places the image", field_name)
        env = environment()
        try:
            ast = env.parse(source)
            compiled = env.from_string(source)
        except TemplateSyntaxError as err:
            raise self.error(f"Jinja syntax error on line {err.lineno}: {err.message}", field_name) from err
        variables = meta.find_undeclared_variables(ast)
        self.used |= variables
        static = None
        if not variables:
            try:
                static = render(compiled, with_globals({}), file=self.file, field=field_name, timed=True) or None
            except TemplateError:
                static = None  # the load-time check renders it again and reports the failure
        return Phrasing(source, compiled, static)

    def phrasings(self, values: object, field_name: str, required: bool = True) -> tuple[Phrasing, ...]:
        if values is None and not required:
            return ()
        if not isinstance(values, list) or not values:
            raise self.error("expected a non-empty list of strings", field_name)
        if len(set(map(str, values))) != len(values):
            raise self.error("the same phrasing is listed twice", field_name)
        return tuple(self.compile(v, f"{field_name}[{i}]") for i, v in enumerate(values))

    def load(self) -> Template:
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" on line {mark.line + 1}" if mark else ""
            raise self.error(f"YAML syntax error{where}: {getattr(err, 'problem', err)}") from err
        except (OSError, UnicodeDecodeError) as err:
            raise self.error(f"cannot read template: {err}") from err
        if not isinstance(data, dict):
            raise self.error("a template file must be a YAML mapping")
        unknown = sorted(set(data) - KEYS)
        if unknown:
            raise self.error(f"unknown keys: {', '.join(unknown)} (allowed: {', '.join(sorted(KEYS))})")
        for key in ("name", "family", "kind"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise self.error("missing or not a string", key)
        name, family, kind = data["name"], data["family"], data["kind"]
        if family not in KINDS:
            raise self.error(f"unknown family {family!r}; one of {', '.join(FAMILIES)}", "family")
        if kind not in KINDS[family]:
            raise self.error(f"kind {kind!r} is not one of {family}'s: {', '.join(KINDS[family])}", "kind")
        if not name.startswith(family + "."):
            raise self.error(f"name {name!r} must start with its family, {family + '.'!r}", "name")
        if kind == "conversation":
            turns, questions, answers = self.turns(data.get("turns")), (), ()
        else:
            if "turns" in data:
                raise self.error("only conversation templates have turns", "turns")
            turns = ()
            questions = self.phrasings(data.get("questions"), "questions")
            answers = self.phrasings(data.get("answers"), "answers")
        by_attribute = self.by_attribute(data.get("questions_by_attribute"), kind)
        template = Template(
            name=name,
            family=family,
            kind=kind,
            file=self.file,
            pack=self.pack,
            description=str(data.get("description", "")).strip(),
            fields=self.declared_fields(data.get("fields"), kind),
            requires=self.requires(data.get("requires")),
            answer_words=self.answer_words(data.get("answer_words"), kind),
            choices=self.choices(data.get("choices"), kind),
            questions=questions,
            questions_by_attribute=by_attribute,
            answers=answers,
            turns=turns,
            max_per_record=self.max_per_record(data.get("max_per_record", 3), kind),
        )
        return template

    def declared_fields(self, value: object, kind: str) -> frozenset[str]:
        declared = value if value is not None else []
        if not isinstance(declared, list) or not all(isinstance(v, str) for v in declared):
            raise self.error("expected a list of variable names", "fields")
        declared = set(declared)
        allowed = set(RECORD_FIELDS) | KIND_VARIABLES.get(kind, set())
        if declared - allowed:
            bad = ", ".join(sorted(declared - allowed))
            raise self.error(
                f"unknown variable(s) {bad} for kind {kind!r}; allowed: {', '.join(sorted(allowed))}", "fields"
            )
        if self.used - declared:
            raise self.error(f"used but not declared: {', '.join(sorted(self.used - declared))}", "fields")
        if declared - self.used:
            raise self.error(f"declared but never used: {', '.join(sorted(declared - self.used))}", "fields")
        return frozenset(declared)

    def requires(self, value: object) -> tuple[str, ...]:
        value = value or []
        if not isinstance(value, list) or any(v not in REQUIRABLE for v in value):
            raise self.error(f"expected a list drawn from {', '.join(REQUIRABLE)}", "requires")
        return tuple(value)

    def answer_words(self, value: object, kind: str) -> dict[str, str] | None:
        classes = ANSWER_CLASSES.get(kind)
        if classes is None:
            if value is not None:
                raise self.error(f"kind {kind!r} takes no answer_words", "answer_words")
            return None
        if not isinstance(value, dict) or set(value) != set(classes):
            raise self.error(f"expected a mapping with exactly the keys {' and '.join(classes)}", "answer_words")
        words = {k: str(v).strip() for k, v in value.items()}
        if any(not w or " " in w for w in words.values()) or len(set(words.values())) != 2:
            raise self.error("answer words must be two different single words", "answer_words")
        return words

    def choices(self, value: object, kind: str) -> dict[str, tuple[str, ...]] | None:
        if kind != "choice":
            if value is not None:
                raise self.error(f"kind {kind!r} takes no choices", "choices")
            return None
        if not isinstance(value, dict) or set(value) != {"fake", "real"}:
            raise self.error("expected a mapping with exactly the keys fake and real", "choices")
        out = {}
        for label, texts in value.items():
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
                raise self.error("expected a non-empty list of option texts", f"choices.{label}")
            out[label] = tuple(t.strip() for t in texts)
        return out

    def by_attribute(self, value: object, kind: str) -> dict[str, tuple[Phrasing, ...]]:
        if value is None:
            return {}
        if kind not in ATTRIBUTE_KINDS:
            raise self.error(f"kind {kind!r} takes no questions_by_attribute", "questions_by_attribute")
        if not isinstance(value, dict):
            raise self.error("expected a mapping of attribute name -> phrasings", "questions_by_attribute")
        from fakeinstruct.chain.taxonomy import default_taxonomy

        out = {}
        for name, phrasings in value.items():
            if name not in default_taxonomy():
                raise self.error(f"unknown attribute {name!r}", "questions_by_attribute")
            out[name] = self.phrasings(phrasings, f"questions_by_attribute.{name}")
        return out

    def turns(self, value: object) -> tuple[Turn, ...]:
        if not isinstance(value, list) or len(value) < 2:
            raise self.error("a conversation needs a list of at least two turns", "turns")
        turns = []
        for i, turn in enumerate(value):
            if not isinstance(turn, dict) or turn.get("family") not in FAMILIES[:-1]:
                raise self.error(f"each turn needs a family from {', '.join(FAMILIES[:-1])}", f"turns[{i}]")
            extra = set(turn) - {"family", "questions"}
            if extra:
                raise self.error(f"unknown keys: {', '.join(sorted(extra))}", f"turns[{i}]")
            questions = self.phrasings(turn.get("questions"), f"turns[{i}].questions", required=False)
            if questions and turn["family"] == "detection":
                # a closed answer's first word is tied to the question that asked it
                raise self.error(
                    "a detection turn takes its question from its template: give it no questions", f"turns[{i}]"
                )
            turns.append(Turn(turn["family"], questions))
        return tuple(turns)

    def max_per_record(self, value: object, kind: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.error("expected a positive integer", "max_per_record")
        return value


class Registry:
    """Templates by name, in a stable order (family, then name)."""

    def __init__(self, templates: list[Template]):
        by_name: dict[str, Template] = {}
        for template in templates:
            if template.name in by_name:
                first = by_name[template.name]
                raise TemplateError(
                    f"duplicate template name {template.name!r} (also in {first.file})",
                    file=template.file,
                    field="name",
                )
            by_name[template.name] = template
        self._templates = dict(sorted(by_name.items(), key=lambda kv: (FAMILIES.index(kv[1].family), kv[0])))

    def __iter__(self):
        return iter(self._templates.values())

    def __len__(self) -> int:
        return len(self._templates)

    def __getitem__(self, name: str) -> Template:
        return self._templates[name]

    def family(self, family: str, kinds: tuple[str, ...] | None = None) -> list[Template]:
        return [t for t in self if t.family == family and (kinds is None or t.kind in kinds)]

    def select(self, families: list[str] | None) -> Registry:
        """The templates of ``families`` only (all when None)."""
        if families is None:
            return self
        unknown = set(families) - set(FAMILIES)
        if unknown:
            raise TemplateError(f"unknown families: {', '.join(sorted(unknown))}; known: {', '.join(FAMILIES)}")
        return Registry([t for t in self if t.family in families])

    def fingerprint(self) -> str:
        """A hash of every template's name and content: it changes whenever the template set does."""
        digest = hashlib.sha256()
        for template in self:
            digest.update(template.name.encode())
            digest.update(Path(template.file).read_bytes())
        return digest.hexdigest()[:16]


def load_file(path: str | Path, pack: str = "local") -> Template:
    return _Loader(Path(path), pack).load()


def builtin_dir() -> Path:
    return Path(str(resources.files("fakeinstruct") / "templates"))


def entry_point_dirs() -> list[tuple[str, Path]]:
    """Template folders registered by installed packages under the ``fakeinstruct.templates`` group."""
    found = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = ep.load()
            if isinstance(target, ModuleType):
                target = Path(target.__file__).parent / "templates"
            elif callable(target):
                target = target()
        except Exception as err:  # a broken third-party pack must name itself, not crash the run
            raise TemplateError(f"entry point {ep.name!r} ({ep.value}) failed to load: {err}") from err
        path = Path(target)
        if not path.is_dir():
            raise TemplateError(f"entry point {ep.name!r} ({ep.value}) points to a missing folder {path}")
        found.append((ep.name, path))
    return sorted(found)


def load_dir(path: str | Path, pack: str) -> list[Template]:
    if not Path(path).is_dir():
        raise TemplateError(f"template folder {path} does not exist")
    files = sorted(Path(path).rglob("*.yaml")) + sorted(Path(path).rglob("*.yml"))
    return [load_file(f, pack) for f in files]


def load_registry(
    dirs: list[str | Path] | tuple = (),
    *,
    builtin: bool = True,
    entry_points: bool = True,
    check: bool = True,
) -> Registry:
    """Load the built-in templates, the installed packs and ``dirs``; check them on the probe records."""
    templates: list[Template] = []
    if builtin:
        templates += load_dir(builtin_dir(), "builtin")
    if entry_points:
        for name, path in entry_point_dirs():
            templates += load_dir(path, name)
    for path in dirs:
        templates += load_dir(path, str(path))
    registry = Registry(templates)
    if check:
        from fakeinstruct.templating.probes import check_registry

        check_registry(registry)
    logger.debug("loaded %d templates", len(registry))
    return registry
