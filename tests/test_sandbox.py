"""Template rendering limits: a hostile template fails fast, at load time, with a TemplateError naming its file and
field; templates within the limits render as before."""

import time

import pytest
import yaml
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fakeinstruct.chain.taxonomy import default_taxonomy
from fakeinstruct.cli import main
from fakeinstruct.errors import TemplateError
from fakeinstruct.templating.engine import MAX_LOOP_ITERATIONS, environment, render, sandbox, with_globals
from fakeinstruct.templating.engine.filters import join_and, lcfirst, sentence, titles
from fakeinstruct.templating.probes import check_registry, check_template, probe_chains
from fakeinstruct.templating.registry import load_file, load_registry
from fakeinstruct.templating.variables import record_context

BIG = "'x' * 1000000"  # a value within the limits, large enough to make repeated work slow
# template answer -> the start of the reason it is refused
HOSTILE = {
    "{% for i in range(10**9) %}x{% endfor %}": "render failed: SecurityError: range of 1000000000 numbers",
    "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}": "render failed: Security"
    "Error: more than 10000 loop iterations in one render",
    "{% for a in range(9) %}{% for b in range(9) %}{% for c in range(9) %}{% for d in range(9) %}{% for e in range(9)"
    " %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}x": "render failed: SecurityError: more than",
    "{{ 'x' * 10**9 }}": "render failed: SecurityError: '*' would build a value of size 1000000000",
    # a constant Jinja would fold while compiling, before any limit could apply
    "{{ 'x' * 1000000000 }}": "render failed: SecurityError: '*' would build a value of size 1000000000",
    "{{ [1, 2] * 1000000000 }}": "render failed: SecurityError: '*' would build a value of size",
    "{{ 2 ** 100000000 }}": "render failed: SecurityError: '**' would make an integer over 4096 bits",
    "{{ '%01000000000d' % 1 }}": "render failed: SecurityError: a % format width of 1000000000",
    "{{ '%*d' % (1000000000, 1) }}": "render failed: SecurityError: a % format width of *",
    "{{ '{:>1000000000}'.format(1) }}": "render failed: SecurityError: a format width of 1000000000",
    "{{ 'x' | center(1000000000) }}": "render failed: SecurityError: center would build a value of size",
    "{{ 'x'.ljust(1000000000) }}": "render failed: SecurityError: str.ljust() would build a value of size",
    "{{ ('a\\n' * 1000) | indent(1000000) }}": "render failed: SecurityError: indent would build",
    "{{ 'ab' | replace('', 'x' * 500000) }}": "render failed: SecurityError: replace would build",
    "{{ ('x' * 100000) | list | join('y' * 100) }}": "render failed: SecurityError: join would build",
    "{{ ('x' * 100000) | list | join_and('y' * 100) }}": "render failed: SecurityError: join_and would build",
    "{{ [1] | batch(1000000000, 0) | list }}": "render failed: SecurityError: batch would build",
    "{{ ('\\\\' * 1000) | tojson | tojson | tojson | tojson | tojson | tojson | tojson | tojson | tojson | tojson"
    " | tojson }}": "render failed: SecurityError: tojson would build",
    # one large value held many times over: cheap to build, huge to print
    f"{{{{ range(10000) | map(attribute='q', default={BIG}) | list | length }}}}": "render failed: SecurityError: list",
    f"{{{{ {{}}.fromkeys(range(10000), {BIG}) | length }}}}": "render failed: SecurityError: a call would build",
    f"{{% set a = [{BIG}] %}}{{% set b = [a, a] %}}{{{{ b | length }}}}": "render failed: SecurityError: an expression",
    "{% set ns = namespace(x=[1]) %}{% for i in range(60) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x }}": (
        "render failed: SecurityError: an expression would build a value of size"
    ),
    "{% set ns = namespace(x='ab') %}{% for i in range(60) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}": (
        "render failed: SecurityError: an expression would build a value of size"
    ),
    "{% for i in range(9000) %}{{ 'x' * 1000 }}{% endfor %}": "render failed: SecurityError: rendered over 20000 char",
    # within every size limit, but slow: the load-time check stops it at its CPU-time deadline
    f"{{% set s = {BIG} %}}{{% for i in range(10000) %}}{{% if 'zz' in s %}}y{{% endif %}}{{% endfor %}}ok": (
        "render failed: SecurityError: the render took over 0.5 s of CPU time"
    ),
    # loopless, but heavy: codecs are refused (punycode is quadratic), and every render at load is timed
    "{{ ('%c%c%c' % (300, 301, 302) * 333).encode('punycode') }}": (
        "render failed: SecurityError: access to attribute 'encode' of 'str' object is unsafe"
    ),
    "{{ 'x'.encode('utf-8').decode('punycode') }}": "render failed: SecurityError: access to attribute 'encode'",
    f"{{% set s = 'ab cd ' * 170000 %}}{{{{ s{' | title' * 30} | length }}}}": (
        "render failed: SecurityError: the render took over 0.5 s of CPU time"
    ),
    f"{{% set s = {BIG} %}}{{{{ {' ~ '.join(['(s.upper() | length)'] * 3000)} }}}}": (
        "render failed: SecurityError: the render took over 0.5 s of CPU time"
    ),
    # nothing may recurse or load another template
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}": "Jinja syntax error on line 1: macros are not allowed",
    "{% macro f() %}{{ caller() }}{% endmacro %}{% call f() %}x{% endcall %}": "Jinja syntax error on line 1: macros",
    "{% for i in [1] recursive %}{{ loop([1]) }}{% endfor %}": "Jinja syntax error on line 1: recursive loops are",
    "{% block b %}{{ self.b() }}{% endblock %}": "Jinja syntax error on line 1: blocks are not allowed",
    "{% include 'other.yaml' %}": "Jinja syntax error on line 1: includes are not allowed",
    "{% import 'other.yaml' as o %}x": "Jinja syntax error on line 1: imports are not allowed",
    "{% extends 'other.yaml' %}": "Jinja syntax error on line 1: extends are not allowed",
}


def write_template(folder, answer: str, name: str = "hostile"):
    data = {"name": f"explanation.{name}", "family": "explanation", "kind": "free"}
    data.update(questions=["Why?"], answers=[answer])
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("answer", list(HOSTILE))
def test_hostile_template_fails_fast_at_load_naming_file_and_field(answer, tmp_path):
    path = write_template(tmp_path, answer)
    start = time.perf_counter()
    with pytest.raises(TemplateError) as info:
        check_registry(load_registry([tmp_path], builtin=False, entry_points=False))
    seconds = time.perf_counter() - start
    assert (info.value.file, info.value.field) == (str(path), "answers[0]")
    assert info.value.message.startswith(HOSTILE[answer]), info.value.message
    assert seconds < 5, f"took {seconds:.1f} s"


def test_templates_check_command_reports_a_hostile_template(tmp_path, capsys):
    path = write_template(tmp_path, "{% for i in range(10**9) %}x{% endfor %}")
    assert main(["templates", "check", str(tmp_path), "--no-builtin"]) == 2
    assert f"error: {path}: answers[0]: render failed: SecurityError: range of" in capsys.readouterr().err


def render_source(source: str, **context) -> str:
    return render(environment().from_string(source), with_globals(context), file="t.yaml", field="answers[0]")


LOOP_READS = (
    "{% for r in 'abcd' %}{{ loop.index }}{{ loop.cycle('x', 'y') }}{{ loop.last }}{{ loop.length }}{% endfor %}"
)


@pytest.mark.parametrize(
    "expression", ["loop.__class__", "loop._iterator", "loop.cycle.__self__", "loop.__init__", "'x'.__class__"]
)
def test_internals_stay_refused_after_safe_reads_of_the_same_kind_of_object(expression):
    # the loop variable's and str's safe names are judged once and then read directly; the rest never are
    render_source(LOOP_READS)
    with pytest.raises(TemplateError, match=r"SecurityError: access to attribute '_*\w+' of '\w+' object is unsafe"):
        render_source(LOOP_READS + "{% for r in [1] %}{{ " + expression + " }}{% endfor %}")


def test_loop_variable_reads_render_as_in_jinjas_own_sandbox():
    plain = ImmutableSandboxedEnvironment(undefined=StrictUndefined).from_string(LOOP_READS).render()
    assert render_source(LOOP_READS) == render_source(LOOP_READS) == plain == "1xFalse42yFalse43xFalse44yTrue4"


def test_loops_up_to_the_limit_render_and_one_more_fails():
    total = f"{{% for i in range({MAX_LOOP_ITERATIONS - 1}) %}}{{% endfor %}}{{% for i in range(1) %}}ok{{% endfor %}}"
    assert render_source(total) == "ok"
    with pytest.raises(TemplateError, match="more than 10000 loop iterations"):
        render_source(total.replace("range(1)", "range(2)"))
    # a loop over a generator (no length) is counted item by item
    assert render_source("{% for i in range(10) | select('odd') %}{{ i }}{% endfor %}") == "13579"
    with pytest.raises(TemplateError, match="more than 10000 loop iterations"):
        render_source("{% for i in range(5000) %}{% for j in range(3) | select %}{% endfor %}{% endfor %}")


def test_values_within_the_limits_are_built_as_before():
    assert render_source("{{ ('ab' * 3) ~ ('-' * 2) }}") == "ababab--"
    assert render_source("{{ [1, 2] * 2 }} {{ (1,) + (2,) }} {{ 2 ** 10 }} {{ '%03d|%s' % (7, 'x') }}") == (
        "[1, 2, 1, 2] (1, 2) 1024 007|x"
    )
    assert render_source("{{ '{:>4}'.format(7) }}|{{ 'x' | center(5) }}|{{ 'a,b'.split(',') | join('+') }}") == (
        "7|  x  |a+b"
    )
    source = "{% set ns = namespace(n=0) %}{% for a in items %}{% set ns.n = ns.n + a %}{% endfor %}{{ ns.n }}"
    assert render_source(source, items=[1, 2, 3]) == "6"
    assert render_source("{{ items | join_and }}", items=["a", "b", "c"]) == "a, b and c"
    assert render_source("{{ items | join(', ') }}", items=list(range(40))).endswith("38, 39")
    # a value up to MAX_VALUE_SIZE is allowed: a record line can hold that much text
    assert render_source("{{ ('x' * 1048576) | length }}") == "1048576"


CHECKED_USES = [
    "{{ 'a<b' | escape }} {{ 'a&b' | e }} {{ 'x' | forceescape }} {{ {'k': [1, 'v']} | tojson }}",
    "{{ {'q': 'a b'} | urlencode }} {{ [1, 'x'] | string }} {{ {'a': 1} | pprint }} {{ {'id': 'x'} | xmlattr }}",
    "{{ 'see https://example.org now' | urlize }} {{ 'cab' | list | sort | join }} {{ [2, 1, 2] | unique | list }}",
    "{{ [1, 2] | reverse | list }} {{ items | groupby('k') | list }} {{ {'b': 1, 'a': 2} | dictsort }}",
    "{{ {'a': 1} | items | list }} {{ 'x' | center(7) }}| {{ 'a\nb' | indent(2, first=true) }}",
    "{{ 'aXa' | replace('a', 'bb') }} {{ 'one two three' | wordwrap(5) }} {{ range(5) | batch(2, 0) | list }}",
    "{{ range(5) | slice(2) | list }} {{ '%s-%05.1f' | format('a', 2.5) }} {{ items | join(', ', attribute='k') }}",
    "{{ 'ab'.center(6, '*') }} {{ 'a'.ljust(3) }}|{{ 'a'.rjust(3) }} {{ '7'.zfill(3) }} {{ 'a\tb'.expandtabs(4) }}",
    "{{ 'a-b'.replace('-', '+') }} {{ '+'.join(['a', 'b']) }} {{ 'abc'.translate({97: 'A'}) }} {{ '{0}!'.format(1) }}",
    "{{ '{x}'.format_map({'x': 2}) }} {{ dict(a=1) }} {{ 'a b'.split() }} {{ [1] + [2] }} {{ 'ab' ~ 3 }} {{ 7 % 3 }}",
    "{% set ns = namespace(s='') %}{% for i in range(3) %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.s }}",
]


@pytest.mark.parametrize("source", CHECKED_USES)
def test_checked_filters_methods_and_operators_render_as_in_an_unchecked_sandbox(source):
    plain = ImmutableSandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    items = [{"k": "a"}, {"k": "b"}, {"k": "a"}]
    assert render_source(source, items=items) == plain.from_string(source).render(items=items).strip()


def test_timed_render_stops_a_slow_loop_and_untimed_render_finishes(monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_CHECK_SECONDS", 0.02)
    template = environment().from_string(
        f"{{% set s = {BIG} %}}{{% for i in range(300) %}}{{{{ s | upper | length }}}}{{% endfor %}}"
    )
    context = with_globals({})
    with pytest.raises(TemplateError, match="CPU time"):
        render(template, context, file="t.yaml", field="answers[0]", timed=True)
    # generation renders untimed: its output never depends on the machine's speed
    assert render(template, context, file="t.yaml", field="answers[0]") == "1000000" * 300


def test_builtin_templates_pass_the_load_time_check_with_loops_counted():
    registry = load_registry(entry_points=False)
    looped = [t for t in registry if any(p.compiled.loops for p in t.answers + t.questions)]
    assert len(looped) >= 3
    for template in looped:
        assert check_template(template, probe_chains()) > 0


def test_builtin_phrasings_render_as_in_an_unchecked_sandbox():
    # the checks must not change a single character of what a template within the limits renders
    plain = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False, keep_trailing_newline=False
    )
    plain.filters.update(sentence=sentence, lcfirst=lcfirst, join_and=join_and, titles=titles)
    taxonomy = default_taxonomy()
    options = [{"letter": "A", "text": "a generated image"}, {"letter": "B", "text": "a photograph"}]
    renders = 0
    for template in load_registry(entry_points=False):
        for phrasing in template.answers + template.questions:
            expected = plain.from_string(phrasing.source)
            for chain in probe_chains():
                base = record_context(chain.to_data(), taxonomy)
                for attribute in base["attributes"]:
                    context = {**base, "attribute": attribute, "answer": "Yes", "options": options}
                    got = render(phrasing.compiled, context, file="f", field="x")
                    assert got == expected.render(context).strip(), (template.name, phrasing.source)
                    renders += 1
    assert renders > 1000


def test_templates_are_compiled_from_source_only():
    with pytest.raises(TypeError):
        environment().from_string(environment().parse("x"))


def test_a_template_file_with_a_loop_loads(tmp_path):
    path = write_template(tmp_path, "{% for s in reasoning %}{{ s }} {% endfor %}", name="steps")
    text = path.read_text(encoding="utf-8").replace("kind: free", "kind: free\nfields: [reasoning]")
    path.write_text(text, encoding="utf-8")
    template = load_file(path)
    assert template.answers[0].compiled.loops
    assert check_template(template, probe_chains()) == 2 * len(probe_chains())


def test_a_timed_render_leaves_the_signal_handler_and_timer_as_they_were():
    import signal

    before = signal.getsignal(signal.SIGVTALRM)
    template = environment().from_string("{{ 'ok' }}")
    assert render(template, with_globals({}), file="t.yaml", field="answers[0]", timed=True) == "ok"
    assert signal.getsignal(signal.SIGVTALRM) == before
    assert signal.getitimer(signal.ITIMER_VIRTUAL) == (0.0, 0.0)
