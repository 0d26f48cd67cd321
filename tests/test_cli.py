import json
import subprocess
import sys

import pytest

from fakeinstruct.cli import main


def test_schema_command(tmp_path, capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "FakeChain"
    assert main(["schema", "--out", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text()) == schema


@pytest.mark.parametrize("command", ["schema", "validate", "generate", "templates", "taxonomy", "draft", "import"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: fakeinstruct " + command in capsys.readouterr().out


def test_templates_list_and_check(capsys):
    assert main(["templates", "list"]) == 0
    out = capsys.readouterr().out
    assert "detection." in out and "builtin" in out
    assert main(["templates", "check"]) == 0
    assert "templates OK" in capsys.readouterr().out


def test_generate_prints_counts_per_family(dataset, tmp_path, capsys):
    assert main(["generate", str(dataset), "--out", str(tmp_path / "out"), "--no-progress", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    for family in ("detection", "explanation", "attribute", "enhancement", "multi_turn"):
        assert family in out


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "missing.jsonl" in err
    with pytest.raises(SystemExit) as info:
        main(["generate", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "o"), "--split", "1,2"])
    assert info.value.code == 2
    assert "argument --split: split ratios '1,2' must be" in capsys.readouterr().err


def test_console_script_imports_without_torch():
    code = "import sys, fakeinstruct.cli, fakeinstruct.generation.run; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
