"""The shape of the code: imports run one way (no cycle in fakeinstruct/), and fakeinstruct never needs torch."""

import ast
import fnmatch
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports, anywhere in its body (lazy imports count too)."""
    modules = {module_name(p): p for p in (ROOT / package).rglob("*.py") if "data" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for target in targets:
                # the deepest module of the package that the import names
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", ["fakeinstruct", "modeling"])
def test_no_import_cycle(package):
    graph = import_graph(package)
    assert len(graph) > 10
    assert find_cycle(graph) is None


def test_stages_do_not_import_the_command_line():
    graph = import_graph("fakeinstruct")
    for name, edges in graph.items():
        if not name.startswith("fakeinstruct.cli"):
            assert not {e for e in edges if e.startswith("fakeinstruct.cli")}, name


# Lower layers first: a part of fakeinstruct imports only from parts listed before it.
LAYERS = [
    "fakeinstruct.errors",
    "fakeinstruct.logs",
    "fakeinstruct.yamldata",
    "fakeinstruct.files",
    "fakeinstruct.images",
    "fakeinstruct.folder",
    "fakeinstruct.arguments",
    "fakeinstruct.chain",
    "fakeinstruct.drafting",
    "fakeinstruct.importers",
    "fakeinstruct.templating",
    "fakeinstruct.report",
    "fakeinstruct.generation",
    "fakeinstruct.loading",
    "fakeinstruct.publishing",
    "fakeinstruct.cli",
]


def test_fakeinstruct_layers_import_downwards_only():
    def part(module: str) -> str:
        return ".".join(module.split(".")[:2])

    for name, edges in import_graph("fakeinstruct").items():
        if name == "fakeinstruct":
            continue
        for edge in edges:
            if part(edge) != part(name) and part(edge) != "fakeinstruct":
                assert LAYERS.index(part(edge)) < LAYERS.index(part(name)), f"{name} imports {edge}"


def test_package_data_ships_every_file_of_the_bundled_sample():
    """An installed (non-editable) package must carry the sample the demo and `load_sample` read."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["fakeinstruct"]
    package = ROOT / "fakeinstruct"
    sample = package / "data" / "sample"
    files = [
        p.relative_to(package).as_posix() for p in sample.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ]
    assert files
    missed = [f for f in files if not any(fnmatch.fnmatch(f, g.replace("**/", "*")) for g in globs)]
    assert not missed, f"not in [tool.setuptools.package-data]: {missed}"
