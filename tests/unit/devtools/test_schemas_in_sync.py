"""The committed Avro contract is exactly what `consumer.devtools.schemagen` makes of the
OpenAPI facts: run `make schemas` after changing either."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer.devtools import schemagen
from consumer.devtools.corpus import OPENAPI

REPO = Path(__file__).resolve().parents[3]
GENERATED_FOLDERS = ("envelope", "data", "types")


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    with OPENAPI.open() as fh:
        files = schemagen.build(json.load(fh))
    return {rel: json.dumps(schema, indent=2) + "\n" for rel, schema in files.items()}


def committed() -> dict[str, str]:
    root = REPO / "avro"
    return {
        str(p.relative_to(root)): p.read_text()
        for folder in GENERATED_FOLDERS
        for p in sorted((root / folder).rglob("*"))
        if p.is_file()
    }


def test_same_files(generated: dict[str, str]) -> None:
    have = committed()
    missing = sorted(generated.keys() - have.keys())
    stale = sorted(have.keys() - generated.keys())
    assert not missing, f"not committed (run `make schemas`): {missing}"
    assert not stale, f"committed but no longer generated: {stale}"


def test_same_contents(generated: dict[str, str]) -> None:
    have = committed()
    drifted = sorted(rel for rel in generated.keys() & have.keys() if generated[rel] != have[rel])
    assert not drifted, f"differ from schemagen's output (run `make schemas`): {drifted}"


def test_generation_is_deterministic(generated: dict[str, str]) -> None:
    with OPENAPI.open() as fh:
        again = schemagen.build(json.load(fh))
    assert {rel: json.dumps(s, indent=2) + "\n" for rel, s in again.items()} == generated
