"""Security audit: an AST scan of every Python file of fakeinstruct/, modeling/ and scripts/ for the calls that run
code from data or a string: eval/exec/compile, pickle-family imports, torch.load without weights_only=True,
trust_remote_code=True, yaml.load without a safe loader, a shell=True subprocess and os.system. The scanner is
tested on small synthetic sources, so that it can fail."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("fakeinstruct", "modeling", "scripts")
# (path relative to the repository, rule) -> why it is acceptable. Keep it empty: fix the code instead.
ALLOWED: dict[tuple[str, str], str] = {}

PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput")}


class Scanner(ast.NodeVisitor):
    """Collects (line, rule, detail) findings for one module. Names bound by an import are resolved to the module
    they come from, so that ``import torch as t; t.load(p)`` and ``from os import system`` are still caught."""

    def __init__(self):
        self.findings: list[tuple[int, str, str]] = []
        self.aliases: dict[str, str] = {}  # local name -> dotted origin, e.g. "t" -> "torch", "system" -> "os.system"

    def flag(self, node: ast.AST, rule: str, detail: str) -> None:
        self.findings.append((node.lineno, rule, detail))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.aliases[(alias.asname or alias.name).split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )
            if alias.name.split(".")[0] in PICKLE_MODULES:
                self.flag(node, "pickle-import", f"import {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if module.split(".")[0] in PICKLE_MODULES:
            self.flag(node, "pickle-import", f"from {module} import ...")
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
            if alias.name in PICKLE_MODULES:
                self.flag(node, "pickle-import", f"from {module} import {alias.name}")

    def dotted(self, node: ast.AST) -> str | None:
        """``a.b.c`` for a call's function, with the first name resolved through the imports."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))

    def visit_Call(self, node: ast.Call) -> None:
        name = self.dotted(node.func) or ""
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        if isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec", "compile") and name == node.func.id:
            self.flag(node, "code-from-string", f"{name}()")
        if name in ("builtins.eval", "builtins.exec", "builtins.compile"):
            self.flag(node, "code-from-string", f"{name}()")
        if name == "torch.load" and not is_true(keywords.get("weights_only")):
            self.flag(node, "torch-load", "torch.load() without weights_only=True")
        if is_true(keywords.get("trust_remote_code")):
            self.flag(node, "remote-code", f"{name or 'a call'}(trust_remote_code=True)")
        if name in ("yaml.load", "yaml.load_all") and not self.safe_loader(node, keywords):
            self.flag(node, "yaml-load", f"{name}() without a safe Loader")
        if name in ("yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load", "yaml.full_load_all"):
            self.flag(node, "yaml-load", f"{name}()")
        if is_true(keywords.get("shell")):
            self.flag(node, "shell", f"{name or 'a call'}(shell=True)")
        if tuple(name.rsplit(".", 1)) in SHELL_CALLS:
            self.flag(node, "shell", f"{name}()")
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "trust_remote_code" and is_true(value):
                self.flag(node, "remote-code", "{'trust_remote_code': True}")
        self.generic_visit(node)

    def safe_loader(self, node: ast.Call, keywords: dict) -> bool:
        loader = keywords.get("Loader", node.args[1] if len(node.args) > 1 else None)
        return loader is not None and (self.dotted(loader) or "").rsplit(".", 1)[-1] in SAFE_YAML_LOADERS


def is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def scan_source(source: str, filename: str = "<source>") -> list[tuple[int, str, str]]:
    scanner = Scanner()
    scanner.visit(ast.parse(source, filename=filename))
    return scanner.findings


def python_files() -> list[Path]:
    return sorted(p for folder in SCANNED for p in (REPO / folder).rglob("*.py") if ".venv" not in p.parts)


def test_every_python_file_passes_the_audit():
    files = python_files()
    assert len(files) > 30 and {p.relative_to(REPO).parts[0] for p in files} == set(SCANNED)
    problems = []
    for path in files:
        relative = path.relative_to(REPO).as_posix()
        for line, rule, detail in scan_source(path.read_text(encoding="utf-8"), relative):
            if (relative, rule) not in ALLOWED:
                problems.append(f"{relative}:{line}: {rule}: {detail}")
    assert not problems, "\n".join(problems)


def test_allowlist_entries_are_still_needed():
    for (relative, rule), reason in ALLOWED.items():
        assert reason and rule in {r for _, r, _ in scan_source((REPO / relative).read_text(encoding="utf-8"))}


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("eval('1 + 1')", "code-from-string"),
        ("exec(code)", "code-from-string"),
        ("compile(text, 'f', 'exec')", "code-from-string"),
        ("import builtins\nbuiltins.eval(s)", "code-from-string"),
        ("import pickle", "pickle-import"),
        ("import pickle as p", "pickle-import"),
        ("from pickle import loads", "pickle-import"),
        ("import marshal", "pickle-import"),
        ("import shelve", "pickle-import"),
        ("import dill", "pickle-import"),
        ("import cloudpickle", "pickle-import"),
        ("from torch.serialization import pickle", "pickle-import"),
        ("import torch\ntorch.load(path)", "torch-load"),
        ("import torch\ntorch.load(path, weights_only=False)", "torch-load"),
        ("import torch as t\nt.load(path, map_location='cpu')", "torch-load"),
        ("from torch import load\nload(path)", "torch-load"),
        ("AutoModel.from_pretrained(name, trust_remote_code=True)", "remote-code"),
        ("kwargs = {'trust_remote_code': True}", "remote-code"),
        ("import yaml\nyaml.load(text)", "yaml-load"),
        ("import yaml\nyaml.load(text, Loader=yaml.Loader)", "yaml-load"),
        ("import yaml\nyaml.load(text, yaml.FullLoader)", "yaml-load"),
        ("import yaml\nyaml.unsafe_load(text)", "yaml-load"),
        ("from yaml import load\nload(text)", "yaml-load"),
        ("import subprocess\nsubprocess.run('ls ' + d, shell=True)", "shell"),
        ("import subprocess as sp\nsp.Popen(cmd, shell=True)", "shell"),
        ("import subprocess\nsubprocess.getoutput(cmd)", "shell"),
        ("import os\nos.system('rm -rf ' + d)", "shell"),
        ("from os import system\nsystem(cmd)", "shell"),
        ("import os\nos.popen(cmd)", "shell"),
    ],
)
def test_scanner_catches(source, rule):
    assert rule in [r for _, r, _ in scan_source(source)], source


@pytest.mark.parametrize(
    "source",
    [
        "import yaml\nyaml.safe_load(text)",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.load(text, yaml.CSafeLoader)",
        "import torch\ntorch.load(path, weights_only=True, map_location='cpu')",
        "import re\nre.compile('x')",
        "env.compile(source)",
        "import torch\nmodel = torch.compile(model)",
        "import subprocess\nsubprocess.run(['ls', d], check=True)",
        "AutoModel.from_pretrained(name, trust_remote_code=False)",
        "import json\njson.loads(text)",
        "literal_eval(text)",
        "model.eval()",
    ],
)
def test_scanner_passes_safe_code(source):
    assert scan_source(source) == []
