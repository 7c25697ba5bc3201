"""The core's import graph has no cycle, counting imports inside functions: each module's dependencies point one
way (``runner -> evaluate -> build -> registry``, ``report -> build``), never back."""

from __future__ import annotations

import ast
from pathlib import Path

import sslkit

ROOT = Path(sslkit.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from sslkit import rundir` imports the submodule; `from sslkit import Component` the package
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names
                ]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_core_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# The layers: what the modules under each package may import from the core. ``sslkit`` alone is the package root,
# which imports everything. Lower layers know nothing of runs, reports, the command line or benchmarks.
ALLOWED = {
    "sslkit.data": {"sslkit.errors", "sslkit.util", "sslkit.interfaces", "sslkit.data"},
    "sslkit.engine": {"sslkit.errors", "sslkit.util", "sslkit.interfaces", "sslkit.engine"},
    "sslkit.util": set(),
    "sslkit.errors": set(),
}


def test_lower_layers_import_only_what_the_table_allows() -> None:
    for module, targets in import_graph().items():
        layer = next((name for name in ALLOWED if module == name or module.startswith(name + ".")), None)
        if layer is None:
            continue
        allowed = ALLOWED[layer]
        for target in targets:
            ok = any(target == a or target.startswith(a + ".") for a in allowed)
            assert ok, f"{module} imports {target}; {layer} may import only {sorted(allowed)}"


def test_run_directory_file_names_are_spelled_in_one_module() -> None:
    from sslkit import rundir

    names = [v for k, v in vars(rundir).items() if k.isupper() and isinstance(v, str)]
    assert {
        "config.json",
        "classifier.safetensors",
        "predictions.csv",
        "model.onnx",
        "eval-{name}.json",
    } <= set(names)
    for path in ROOT.rglob("*.py"):
        if path.name == "rundir.py":
            continue
        text = path.read_text()
        for name in names:
            if "." in name or "{" in name:  # file names; folder names ("pretrain") are ordinary words
                assert f'"{name}"' not in text, f"{path.relative_to(ROOT)} spells {name!r}; use sslkit.rundir"
