"""The package's shape: no import cycle (lazy imports counted) and arrows that point one way.

Layers, from the bottom: the leaves (config, contract, pii, kafka_keys, catalogue, model),
telemetry, pipeline, runtime, then the tools (cli, devtools). A module may import its own
layer or one below it, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "consumer"
LAYERS = {"leaf": 0, "telemetry": 1, "pipeline": 2, "runtime": 3, "ingest": 3, "cli": 4, "devtools": 4}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The project module `name` refers to (a symbol's module when `name` is module.symbol)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> set[str]:
    """Every project module `module` imports, at the top or inside a function."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] or [node.module]
        for name in names:
            target = _resolve(name)
            if target is not None and target != module and target != "consumer":
                out.add(target)
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 2 else 0


def test_no_import_cycle_counting_lazy_imports() -> None:
    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_checker_sees_lazy_imports() -> None:
    # The process entry imports the worker; the worker must never import it back.
    assert "consumer.runtime.worker" in GRAPH["consumer.runtime.process"]
    assert "consumer.runtime.process" not in GRAPH["consumer.runtime.worker"]
    # `main` imports the process entry inside a function: a lazy import is counted.
    assert "consumer.runtime.process" in GRAPH["consumer.cli.main"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_arrows_point_down_the_layers(module: str) -> None:
    up = sorted(t for t in GRAPH[module] if _layer(t) > _layer(module))
    assert up == [], f"{module} (layer {_layer(module)}) imports a higher layer: {up}"


def test_runtime_never_needs_the_tools() -> None:
    runtime = [m for m in MODULES if _layer(m) <= LAYERS["runtime"]]
    reach = {t for m in runtime for t in GRAPH[m]}
    assert not {t for t in reach if t.startswith(("consumer.cli", "consumer.devtools"))}


def test_bench_depends_on_the_package_not_on_the_tests() -> None:
    found = []
    for path in sorted((ROOT / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n == "tests" or n.startswith("tests.")]
    assert found == [], "move what bench/ needs into the package (e.g. consumer/devtools/)"
