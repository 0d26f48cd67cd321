"""One command-line convention across every console command and script: both spellings of multi-word options
(``--output_dir`` and ``--output-dir``, as TRL's scripts take them), defaults shown, and ``--config`` where a YAML
recipe is read."""

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fakeinstruct.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "scripts").glob("*.py"))
RECIPE_SCRIPTS = ("sft.py", "calibrate.py", "evaluate.py", "push_to_hub.py")
OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:[_-][a-z0-9]+)+)")


def declared_options(text: str) -> set[str]:
    """The multi-word options a help text declares (its option lines, not option names mentioned in prose)."""
    options = set()
    for line in text.splitlines():
        if re.match(r"^\s{1,6}-", line):
            options |= set(OPTION.findall(re.split(r"\s{2,}", line.strip())[0]))
    return options


def assert_both_spellings(text: str, where: str) -> None:
    options = declared_options(text)
    for option in options:
        for spelling in (option.replace("-", "_"), option.replace("_", "-")):
            assert spelling in options, f"{where}: --{option} without --{spelling}"


@pytest.fixture(scope="module")
def script_help() -> dict[str, str]:
    def run(name: str) -> tuple[str, subprocess.CompletedProcess]:
        argv = [sys.executable, str(REPO / "scripts" / name), "--help"]
        return name, subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(2) as pool:
        done = dict(pool.map(run, SCRIPTS))
    for name, result in done.items():
        assert result.returncode == 0, f"{name} --help: {result.stderr[-2000:]}"
    return {name: result.stdout for name, result in done.items()}


def test_every_script_has_help_in_one_convention(script_help):
    assert len(script_help) >= 10
    for name, text in script_help.items():
        assert text.startswith("usage: "), name
        assert_both_spellings(text, name)
        assert "(default: " in " ".join(text.split()), f"{name}: no default shown"
    for name in RECIPE_SCRIPTS:
        assert "--config RECIPE.yaml" in script_help[name], name


def test_every_fakeinstruct_command_in_one_convention():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"generate", "validate", "review", "draft", "stats"} <= set(commands)
    for name, command in commands.items():
        assert_both_spellings(command.format_help(), f"fakeinstruct {name}")


def test_the_check_finds_a_missing_spelling():
    with pytest.raises(AssertionError, match="--output_dir without --output-dir"):
        assert_both_spellings("  --output_dir DIR   where", "example")
    assert_both_spellings(
        "  --batch_size N, --batch-size N   rows; see pip --no-build-isolation", "prose is not an option"
    )
