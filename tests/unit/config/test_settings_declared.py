"""Every environment variable the package reads is a declared setting (one home: consumer.config),
and each variable is declared once: no module reads a stray `os.environ["ACTIVITY_..."]`."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

from consumer.config import COMMANDS, KAFKA_PREFIX, specs_of

PACKAGE = Path(__file__).resolve().parents[3] / "consumer"
VARIABLE = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+")


def _read_variables(tree: ast.AST) -> list[tuple[int, str]]:
    """Literal names given to `os.environ[...]`, `os.environ.get(...)` or `os.getenv(...)`."""
    found = []
    for node in ast.walk(tree):
        name: ast.expr | None = None
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            name = node.slice
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv") and node.args:
            name = node.args[0]
        if isinstance(name, ast.Constant) and isinstance(name.value, str) and VARIABLE.fullmatch(name.value):
            found.append((node.lineno, name.value))
    return found


def test_every_variable_read_is_declared_once() -> None:
    # `shared()` hands another command the worker's own Spec object: one declaration, counted once.
    specs = {id(spec): spec for cls in COMMANDS.values() for spec in specs_of(cls).values()}
    declared = Counter(spec.env for spec in specs.values())
    repeated = {env for env, n in declared.items() if n > 1}
    assert not repeated, f"declared more than once: {sorted(repeated)}"
    assert (PACKAGE / "config" / "worker.py").is_file(), PACKAGE  # the scan reads the package, not nothing
    stray = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, name in _read_variables(ast.parse(path.read_text()))
        if name not in declared and not name.startswith(KAFKA_PREFIX)
    ]
    assert not stray, "environment variables read but not declared in consumer.config:\n" + "\n".join(stray)


def test_the_scan_finds_each_way_of_reading_a_variable() -> None:
    code = 'os.environ["A_B"]\nos.environ.get("C_D", "x")\nos.getenv("E_F")\nos.environ.get(name)\n'
    assert _read_variables(ast.parse(code)) == [(1, "A_B"), (2, "C_D"), (3, "E_F")]
