"""One convention for log event names: every event the code names is snake_case
(`delivery_unverified`, `gateway_stopped`): a name to filter on, with the details in fields."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "consumer"
LEVELS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})
SNAKE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


def _named_events(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of each literal event name given to a logger method (`log.info("x", ...)`)."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in LEVELS or not isinstance(node.func.value, ast.Name):
            continue
        if not node.func.value.id.endswith(("log", "logger")):
            continue
        first = node.args[0]
        texts = (
            [first]
            if isinstance(first, ast.Constant)
            else [first.body, first.orelse]
            if isinstance(first, ast.IfExp)
            else []
        )
        found += [(node.lineno, t.value) for t in texts if isinstance(t, ast.Constant) and isinstance(t.value, str)]
    return found


def test_every_log_event_name_is_snake_case() -> None:
    bad, seen = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, name in _named_events(ast.parse(path.read_text())):
            seen += 1
            if not SNAKE.fullmatch(name):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name!r}")
    assert seen > 50, seen  # the scan finds the code's log calls
    assert not bad, "log event names that are not snake_case:\n" + "\n".join(bad)


def test_the_scan_sees_both_branches_of_a_chosen_name() -> None:
    tree = ast.parse('log.warning("a b" if x else "c_d", k=1)\nlogger.info("e_f")')
    assert _named_events(tree) == [(1, "a b"), (1, "c_d"), (2, "e_f")]
