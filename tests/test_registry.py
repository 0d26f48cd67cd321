import shutil
import sys
import textwrap
import time

import pytest

from fakeinstruct.errors import TemplateError
from fakeinstruct.templating.probes import check_registry
from fakeinstruct.templating.registry import builtin_dir, load_file, load_registry

GOOD = """\
name: detection.test_closed
family: detection
kind: closed
fields: [answer, is_fake]
answer_words: {fake: "Yes", real: "No"}
questions: ["Is it synthetic?", "Was this generated?"]
answers: ["{{ answer }}.", "{{ answer }}, {% if is_fake %}it was generated{% else %}it is a photo{% endif %}."]
"""


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path, text, name="t.yaml"):
    path = write(tmp_path, name, text)
    with pytest.raises(TemplateError) as info:
        check_registry(load_registry([tmp_path], builtin=False, entry_points=False))
    assert str(path) in str(info.value)
    return info.value


def test_good_template_loads_and_checks(tmp_path):
    write(tmp_path, "good.yaml", GOOD)
    registry = load_registry([tmp_path], builtin=False, entry_points=False)
    (template,) = list(registry)
    assert template.name == "detection.test_closed" and template.answer_words == {"fake": "Yes", "real": "No"}


@pytest.mark.parametrize(
    ("change", "field", "needle"),
    [
        (("{{ answer }}.", "{{ answer }."), "answers[0]", "Jinja syntax error"),
        (("fields: [answer, is_fake]", "fields: [answer]"), "fields", "used but not declared: is_fake"),
        (
            ("fields: [answer, is_fake]", "fields: [answer, is_fake, label]"),
            "fields",
            "declared but never used: label",
        ),
        (("fields: [answer, is_fake]", "fields: [answer, is_fake, secrets]"), "fields", "unknown variable(s) secrets"),
        (("kind: closed", "kind: essay"), "kind", "not one of detection's"),
        (("name: detection.test_closed", "name: other.test"), "name", "must start with its family"),
        (("questions:", "questionz:"), None, "unknown keys: questionz"),
        (
            ('answer_words: {fake: "Yes", real: "No"}', 'answer_words: {fake: "Yes"}'),
            "answer_words",
            "exactly the keys",
        ),
        (('"{{ answer }}."', '"Well, {{ answer }}."'), "answers[0]", "must start with the answer word"),
        (('"Is it synthetic?"', '"Is it {{ answer.__class__.__mro__ }}?"'), "questions[0]", "render failed"),
        (('"Is it synthetic?"', '"Show <image>"'), "questions[0]", "<image>"),
        (('"Is it synthetic?"', '"Is it \\e[2Jsynthetic?"'), "questions[0]", "control character U+001B (ESC)"),
    ],
)
def test_broken_templates_fail_at_load_naming_file_and_field(tmp_path, change, field, needle):
    old, new = change
    assert old in GOOD
    error = load_error(tmp_path, GOOD.replace(old, new, 1))
    assert needle in str(error)
    if field:
        assert error.field == field


def test_label_mro_escape_is_blocked_by_sandbox(tmp_path):
    text = GOOD.replace('"Is it synthetic?"', "\"{{ ''.__class__.__mro__[1].__subclasses__() }}\"")
    error = load_error(tmp_path, text)
    assert "render failed" in str(error) and "unsafe" in str(error).lower()


def test_yaml_syntax_error_names_line(tmp_path):
    error = load_error(tmp_path, GOOD + "questions: [unclosed\n")
    assert "YAML syntax error on line" in str(error)


def test_duplicate_names_name_both_files(tmp_path):
    write(tmp_path, "a.yaml", GOOD)
    second = write(tmp_path, "b.yaml", GOOD)
    with pytest.raises(TemplateError, match="duplicate template name") as info:
        check_registry(load_registry([tmp_path], builtin=False, entry_points=False))
    assert str(second) in str(info.value) and "a.yaml" in str(info.value)


def test_conversation_needs_family_templates(tmp_path):
    text = """\
    name: multi_turn.test
    family: multi_turn
    kind: conversation
    turns:
      - family: detection
      - family: explanation
        questions: ["Why?"]
    """
    error = load_error(tmp_path, text)
    assert "no detection template" in str(error)


def test_builtin_registry_meets_phrasing_minimums():
    registry = load_registry(entry_points=False)
    per_family = {}
    for template in registry:
        per_family[template.family] = per_family.get(template.family, 0) + template.phrasing_count()
    assert per_family["detection"] >= 20
    for family in ("explanation", "attribute", "enhancement", "multi_turn"):
        assert per_family[family] >= 10, family
    kinds = {t.kind for t in registry}
    assert {"closed", "choice", "free", "per_attribute", "attribute_closed", "listing", "conversation"} <= kinds
    polarities = {tuple(sorted(t.answer_words.items())) for t in registry if t.kind == "closed"}
    assert (("fake", "Yes"), ("real", "No")) in polarities and (("fake", "No"), ("real", "Yes")) in polarities


def test_new_template_file_is_picked_up(tmp_path):
    """CONTRIBUTING.md's promise: adding a file to the templates folder is all it takes."""
    before = {t.name for t in load_registry(entry_points=False)}
    folder = tmp_path / "templates"
    shutil.copytree(builtin_dir(), folder)
    write(folder, "detection/test_closed.yaml", GOOD)
    after = {t.name for t in load_registry([folder], builtin=False, entry_points=False)}
    assert after - before == {"detection.test_closed"}


def test_third_party_pack_via_entry_point(tmp_path, monkeypatch):
    pack = tmp_path / "site" / "my_pack"
    write(pack / "templates", "detection/pack.yaml", GOOD.replace("detection.test_closed", "detection.from_pack"))
    (pack / "__init__.py").write_text(
        "from pathlib import Path\n\ndef templates_dir():\n    return Path(__file__).parent / 'templates'\n"
    )
    dist = tmp_path / "site" / "my_pack-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-pack\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[fakeinstruct.templates]\nmy_pack = my_pack:templates_dir\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    registry = load_registry()
    template = registry["detection.from_pack"]
    assert template.pack == "my_pack"
    monkeypatch.delitem(sys.modules, "my_pack", raising=False)


def test_load_file_direct(tmp_path):
    template = load_file(write(tmp_path, "x.yaml", GOOD))
    assert template.phrasing_count() == 2


@pytest.mark.parametrize(
    "source",
    [
        "{{ ({}).__class__ }}",
        "{{ attribute.__class__.__mro__ }}",
        "{{ attribute.items.__self__ }}",
        "{{ 'x'.__class__ }}",
        "{{ 'x'.format.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_sandbox_blocks_escapes_on_every_path(source):
    from jinja2.exceptions import SecurityError, UndefinedError

    from fakeinstruct.templating.engine import environment, render, with_globals

    template = environment().from_string(source)
    with pytest.raises(TemplateError) as info:
        render(template, with_globals({"attribute": {"title": "texture"}}), file="t.yaml", field="q")
    assert isinstance(info.value.__cause__, (SecurityError, UndefinedError))


def test_sandbox_fast_path_reads_items_only():
    from fakeinstruct.templating.engine import environment, render, with_globals

    template = environment().from_string("{{ a.title }} {{ {'__class__': 'value'}.__class__ }} {{ 'x'.upper() }}")
    assert render(template, with_globals({"a": {"title": "texture"}}), file="t", field="q") == "texture value X"


def _laughs(depth: int = 9) -> str:
    """Nested aliases: a few hundred bytes that stand for 9**depth strings."""
    levels = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, depth)]
    return "[" + ", ".join(levels) + "]"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # a billion laughs in a field, and a harmless-looking alias in a template that is otherwise valid
        (("fields: [answer, is_fake]", f"fields: {_laughs()}"), "YAML anchors (&l0) are not allowed in this file"),
        (
            (
                'questions: ["Is it synthetic?", "Was this generated?"]',
                'questions: [&q "Is it synthetic?"]\ndescription: *q',
            ),
            "YAML anchors (&q) are not allowed in this file",
        ),
    ],
)
def test_yaml_anchors_and_aliases_are_refused_naming_the_line(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    start = time.perf_counter()
    error = load_error(tmp_path, GOOD.replace(old, new, 1))
    assert message in error.message and "on line " in error.message
    assert time.perf_counter() - start < 5


def test_a_taxonomy_file_with_aliases_is_refused(tmp_path):
    from fakeinstruct.chain.taxonomy import load_taxonomy
    from fakeinstruct.errors import TaxonomyError

    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "attributes:\n  - &w {name: watermark, title: t, description: d, natural: n, anomalous: a, advice: f}\n"
        "  - *w\n"
    )
    with pytest.raises(TaxonomyError, match=r"on line 2: YAML anchors \(&w\) are not allowed") as info:
        load_taxonomy(extra)
    assert info.value.file == str(extra)
