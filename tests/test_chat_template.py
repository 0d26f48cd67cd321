"""A checkpoint's chat template renders within the render budget: a hostile one is refused in one line when the
checkpoint loads (or, if it turns hostile later, when it is rendered), and a real one renders as transformers does."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, write_png

from modeling.cli import main as fakescope
from modeling.detector import FakeScopeDetector
from modeling.scoring.chat_template import ChatTemplateError, assistant_turn, render_chat, user_turn

LOOPS = "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}"
# chat template -> the start of the reason it is refused
HOSTILE = {
    LOOPS: "SecurityError: more than 10000 loop iterations in one render",
    LOOPS.replace("9999", "99999"): "SecurityError: range of 99999 numbers, over the limit of 10000",
    "{% for i in range(10**9) %}x{% endfor %}": "SecurityError: range of 1000000000 numbers",
    "{{ 'x' * 10**9 }}": "SecurityError: '*' would build a value of size 1000000000",
    "{{ 'x' * 10000000000 }}": "SecurityError: '*' would build a value of size 10000000000",  # not folded either
    "{{ ('%c%c%c' % (300, 301, 302) * 3000).encode('punycode') }}": "SecurityError: access to attribute 'encode'",
    "{% macro f(n) %}{{ f(n) ~ f(n) }}{% endmacro %}{{ f(1) }}": "",  # recursion: RecursionError or the deadline
    "{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}": (
        "SecurityError: an expression would build a value of size"
    ),
    "{% for i in range(5000) %}" + "x" * 1000 + "{% endfor %}": "SecurityError: rendered over 1048576 characters",
    "{% set s = 'ab cd ' * 170000 %}{{ s" + " | title" * 30 + " | length }}": "SecurityError: the render took over",
}


def with_template(model: Path, source: str) -> Path:
    (model / "chat_template.jinja").write_text(source, encoding="utf-8")
    return model


@pytest.fixture
def checkpoint(tiny_model, tmp_path) -> Path:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    return model


@pytest.mark.parametrize("source", list(HOSTILE), ids=range(len(HOSTILE)))
def test_a_hostile_chat_template_is_refused_when_the_checkpoint_loads(source, checkpoint):
    with_template(checkpoint, source)
    start = time.perf_counter()
    with pytest.raises(ChatTemplateError) as info:
        FakeScopeDetector.from_pretrained(checkpoint)
    message = str(info.value)
    assert message.startswith(f"{checkpoint}: the chat template failed: {HOSTILE[source]}"), message
    assert "\n" not in message and time.perf_counter() - start < 30


def test_fakescope_detect_refuses_a_hostile_chat_template_in_one_line_and_does_not_hang(checkpoint, tmp_path):
    with_template(checkpoint, LOOPS)
    write_png(tmp_path / "photo.png", seed=1)
    command = [sys.executable, "-m", "modeling.cli", "detect", str(tmp_path / "photo.png"), "--model", str(checkpoint)]
    # before the budget this ran for hours: the timeout makes it a failure, not a hang
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1:] == [
        f"fakescope detect: cannot load {checkpoint}: {checkpoint}: the chat template failed: SecurityError: more "
        "than 10000 loop iterations in one render"
    ]


def test_a_template_that_turns_hostile_on_one_question_fails_that_render_in_one_line(checkpoint, tmp_path, capsys):
    source = (checkpoint / "chat_template.jinja").read_text(encoding="utf-8")
    trap = "{% if messages[0]['content'][1]['text'] == 'Does the texture look natural?' %}" + LOOPS + "{% endif %}"
    with_template(checkpoint, trap + source)
    detector = FakeScopeDetector.from_pretrained(checkpoint)  # the load-time check does not ask that question
    write_png(tmp_path / "photo.png", seed=1)
    with pytest.raises(ChatTemplateError, match="more than 10000 loop iterations"):
        detector(tmp_path / "photo.png", explain=False, attributes=True)
    capsys.readouterr()
    args = ["detect", str(tmp_path / "photo.png"), "--model", str(checkpoint), "--attributes"]
    assert fakescope(args) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"fakescope detect: cannot score with {checkpoint}: the chat template failed: SecurityError: more than 10000 "
        "loop iterations in one render"
    ]


# what real chat templates use: macros, the generation tag, loop controls, namespaces, tojson, raise_exception
REAL = """{%- macro text(message) -%}{%- for block in message['content'] if block['type'] == 'text' -%}
{{- block['text'] -}}{%- if loop.index > 5 %}{% break %}{% endif -%}{%- endfor -%}{%- endmacro -%}
{%- set ns = namespace(n=0) -%}{{- bos_token -}}
{%- for message in messages -%}{%- set ns.n = ns.n + 1 -%}
{%- if message['role'] not in ['user', 'assistant'] %}{{ raise_exception('role') }}{% endif -%}
{{- '<|' + message['role'] + '|>\\n' -}}
{%- if message['role'] == 'assistant' -%}{%- generation -%}{{- text(message) + eos_token -}}{%- endgeneration -%}
{%- else -%}{%- for block in message['content'] -%}{%- if block['type'] == 'image' %}<image>
{% endif -%}{%- endfor -%}{{- text(message) | trim -}}{%- endif %}
{{ {'turn': ns.n} | tojson }}
{% endfor -%}{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"""


@pytest.mark.parametrize("source", ["tiny", "idefics3", REAL])
def test_real_chat_templates_render_as_transformers_renders_them(source, checkpoint, tmp_path):
    from transformers import AutoProcessor
    from transformers.utils import chat_template_utils

    if source == "idefics3":
        from modeling.tiny.idefics3 import build_tiny_idefics3

        checkpoint = build_tiny_idefics3(tmp_path / "idefics3")
    elif source != "tiny":
        with_template(checkpoint, source)
    processor = AutoProcessor.from_pretrained(checkpoint)
    original = chat_template_utils._compile_jinja_template
    question = user_turn("Is this image real or fake?")
    for messages, kwargs in ((question, {"add_generation_prompt": True}), ([*question, assistant_turn("Fake")], {})):
        ours = render_chat(processor, messages, **kwargs)
        assert chat_template_utils._compile_jinja_template is original  # transformers is left as it was
        assert ours == processor.apply_chat_template(messages, tokenize=False, **kwargs)
