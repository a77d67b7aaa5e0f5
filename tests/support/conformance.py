"""Shared helpers of the conformance suite: where the corpus lives, strict JSON equality,
a mock Schema Registry, and how to run the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from consumer.devtools.corpus import EXAMPLES

REPO = Path(__file__).resolve().parents[2]
SEED_FIXTURES = REPO / "tests" / "fixtures" / "seed"


def corpus_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


def seed_fixture_files() -> list[Path]:
    return sorted(SEED_FIXTURES.glob("*.json"))


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def identical(a: Any, b: Any, where: str = "$") -> None:
    """Assert two JSON values are the same, types included (1 != 1.0 != True), keys in
    any order. Raises AssertionError naming the first differing path."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} {a!r} != {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a.keys() ^ b.keys())} differ"
        for k in a:
            identical(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def mock_registry() -> Any:
    """confluent_kafka's in-memory Schema Registry client (one store per client object)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient.new_client({"url": f"mock://test-{uuid.uuid4()}"})


def cli_command() -> list[str]:
    """`activity-consumer` from the venv when installed, else `python -m consumer.cli`."""
    exe = Path(sys.executable).parent / "activity-consumer"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("activity-consumer")
    if found:
        return [found]
    return [sys.executable, "-m", "consumer.cli"]


def run_cli(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [*cli_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
