"""Wire names live in the contract: header names appear as string literals nowhere else in
consumer/, bench/ or tests/ (docstrings may mention them), and the topic naming rules are its
functions."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from consumer import contract
from consumer.config import Settings
from consumer.contract import (
    DLQ_PREFIX,
    H_ACTIVITY_ID,
    H_DLQ_REASON,
    STREAMS,
    dead_letter_topic,
    is_own_output,
    output_topic,
)

ROOT = Path(__file__).resolve().parents[2]
HEADER_NAMES = [v for k, v in vars(contract).items() if k.startswith("H_")]
# A header name as a whole token (not inside a longer name such as `activity-consumer-dlq-replay`),
# or the start of a dead-letter header name (an f-string's `dlq-source-{...}`).
TOKEN = re.compile(
    "|".join([*(rf"(?<![\w-]){re.escape(n)}(?![\w-])" for n in HEADER_NAMES), rf"(?<![\w/-]){DLQ_PREFIX}"])
)


def _docstrings(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def header_literals(source: str) -> list[tuple[int, str]]:
    """(line, literal) of every string or bytes literal, docstrings aside, naming a header."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in skip and isinstance(node.value, str | bytes):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            if TOKEN.search(text):
                found.append((node.lineno, text))
    return sorted(found)


def test_the_check_finds_header_literals() -> None:
    snippet = (
        f'"""Mentions {H_ACTIVITY_ID}."""\nh = [("{H_ACTIVITY_ID}", b"1"), (b"{H_DLQ_REASON}", 2)]\n'
        f'x = f"{{a}}{DLQ_PREFIX}source-{{b}}"\n'
    )
    assert [line for line, _ in header_literals(snippet)] == [2, 2, 3]
    assert (
        header_literals('GROUP = "activity-consumer-dlq-replay"\nk = "activity-ids"\np = "examples/dlq-replay"') == []
    )


def test_header_names_are_written_only_in_the_contract() -> None:
    contract_py = ROOT / "consumer" / "contract.py"
    files = [p for d in ("consumer", "bench", "tests") for p in sorted((ROOT / d).rglob("*.py")) if p != contract_py]
    assert len(files) > 50
    offenders = [
        f"{p.relative_to(ROOT)}:{line}: {text!r}" for p in files for line, text in header_literals(p.read_text())
    ]
    assert offenders == [], "import the name from consumer.contract:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    ("prefix", "dlq", "own", "not_own"),
    [
        (None, None, ["ca.lifecycle", "x.y.orders", "ca.dlq"], ["ca", "ca.lifecycles", "lifecycle"]),
        ("out-", "dead", ["out-orders", "dead"], ["out-x", "ca.orders", "ca.dlq"]),
    ],
)
def test_topic_naming_rules(prefix: str | None, dlq: str | None, own: list[str], not_own: list[str]) -> None:
    assert output_topic("ca", "orders", prefix) == ("ca.orders" if prefix is None else f"{prefix}orders")
    assert dead_letter_topic("ca", dlq) == (dlq or "ca.dlq")
    assert [t for t in own if not is_own_output(t, STREAMS, prefix, dlq)] == []
    assert [t for t in not_own if is_own_output(t, STREAMS, prefix, dlq)] == []
    s = Settings(topics=("ca",), output_prefix=prefix, dlq_topic=dlq)
    assert s.output_topic("ca", "orders") == output_topic("ca", "orders", prefix)
    assert s.dead_letter_topic("ca") == dead_letter_topic("ca", dlq)
