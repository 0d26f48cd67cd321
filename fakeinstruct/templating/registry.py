"""The template registry: instruction templates are YAML + Jinja data files, validated and compiled when they load.

Built-in templates live in ``fakeinstruct/templates/<family>/``; third-party packs register a folder through
the ``fakeinstruct.templates`` entry-point group. Callers that render (generation, ``templates check``) then run
:func:`fakeinstruct.templating.probes.check_registry`, which renders every phrasing on probe records.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from types import ModuleType

from jinja2 import TemplateSyntaxError, meta

from fakeinstruct.errors import TemplateError
from fakeinstruct.templating.engine import environment, render, with_globals
from fakeinstruct.templating.kinds import FAMILIES, KIND_VARIABLES
from fakeinstruct.templating.spec import TemplateSpec, parse_spec
from fakeinstruct.templating.variables import RECORD_FIELDS

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fakeinstruct.templates"


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
    """A loaded template: its :class:`~fakeinstruct.templating.spec.TemplateSpec` with every phrasing compiled."""

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

    def phrasing_count(self) -> int:
        per_attr = sum(len(v) for v in self.questions_by_attribute.values())
        return len(self.questions) + per_attr + sum(len(t.questions) for t in self.turns)


class _Compiler:
    """Compiles the phrasings of one template file, recording the variables they read."""

    def __init__(self, file: str):
        self.file = file
        self.used: set[str] = set()

    def phrasing(self, source: str, field_name: str) -> Phrasing:
        env = environment()
        try:
            ast = env.parse(source)
            compiled = env.from_string(source)
        except TemplateSyntaxError as err:
            raise TemplateError(
                f"Jinja syntax error on line {err.lineno}: {err.message}", file=self.file, field=field_name
            ) from err
        variables = meta.find_undeclared_variables(ast)
        self.used |= variables
        static = None
        if not variables:
            try:
                static = render(compiled, with_globals({}), file=self.file, field=field_name, timed=True) or None
            except TemplateError:
                static = None  # the load-time probes render it again and report the failure
        return Phrasing(source, compiled, static)

    def phrasings(self, sources: list[str] | None, field_name: str) -> tuple[Phrasing, ...]:
        return tuple(self.phrasing(s, f"{field_name}[{i}]") for i, s in enumerate(sources or ()))

    def check_fields(self, declared: list[str], kind: str) -> frozenset[str]:
        """The declared variables, which must be exactly those the phrasings read, each allowed for ``kind``."""
        declared = set(declared)
        allowed = set(RECORD_FIELDS) | KIND_VARIABLES.get(kind, set())

        def error(message: str) -> TemplateError:
            return TemplateError(message, file=self.file, field="fields")

        if declared - allowed:
            bad = ", ".join(sorted(declared - allowed))
            raise error(f"unknown variable(s) {bad} for kind {kind!r}; allowed: {', '.join(sorted(allowed))}")
        if self.used - declared:
            raise error(f"used but not declared: {', '.join(sorted(self.used - declared))}")
        if declared - self.used:
            raise error(f"declared but never used: {', '.join(sorted(declared - self.used))}")
        return frozenset(declared)


def _template(spec: TemplateSpec, file: str, pack: str) -> Template:
    compiler = _Compiler(file)
    turns = tuple(
        Turn(turn.family, compiler.phrasings(turn.questions, f"turns[{i}].questions"))
        for i, turn in enumerate(spec.turns or ())
    )
    questions = compiler.phrasings(spec.questions, "questions")
    answers = compiler.phrasings(spec.answers, "answers")
    by_attribute = {
        name: compiler.phrasings(sources, f"questions_by_attribute.{name}")
        for name, sources in (spec.questions_by_attribute or {}).items()
    }
    choices = spec.choices and {label: tuple(texts) for label, texts in spec.choices.items()}
    return Template(
        name=spec.name,
        family=spec.family,
        kind=spec.kind,
        file=file,
        pack=pack,
        description=spec.description.strip(),
        fields=compiler.check_fields(spec.fields, spec.kind),
        requires=tuple(spec.requires),
        answer_words=spec.answer_words,
        choices=choices,
        questions=questions,
        questions_by_attribute=by_attribute,
        answers=answers,
        turns=turns,
        max_per_record=spec.max_per_record,
    )


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
    """Parse, validate and compile one template file; any problem is a :class:`TemplateError` naming it."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TemplateError(f"cannot read template: {err}", file=file) from err
    return _template(parse_spec(text, file), file, pack)


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
) -> Registry:
    """Load the built-in templates, the installed packs and ``dirs`` (compiled, not yet probed)."""
    templates: list[Template] = []
    if builtin:
        templates += load_dir(builtin_dir(), "builtin")
    if entry_points:
        for name, path in entry_point_dirs():
            templates += load_dir(path, name)
    for path in dirs:
        templates += load_dir(path, str(path))
    registry = Registry(templates)
    logger.debug("loaded %d templates", len(registry))
    return registry
