"""Every `.avsc` under `avro/` is a standard, standalone Avro schema file: the Apache `avro`
library parses each one, in dependency order, as avro-tools or registry schema references
would, with no help from this project's code (no expander, no default namespace)."""

from __future__ import annotations

import json
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import avro.schema
from avro.name import Names

AVRO_DIR = Path(__file__).resolve().parents[2] / "avro"
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
NAMED = {"record", "error", "enum", "fixed"}


def _full(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _walk(schema: Any, namespace: str | None, defined: set[str], used: set[str]) -> None:
    """Collect the full names a schema defines and the ones it refers to, by Avro's rules."""
    if isinstance(schema, str):
        if schema not in PRIMITIVES:
            used.add(_full(schema, namespace))
    elif isinstance(schema, list):
        for branch in schema:
            _walk(branch, namespace, defined, used)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in NAMED:
            full = _full(schema["name"], schema.get("namespace", namespace))
            defined.add(full)
            inner = full.rpartition(".")[0] or None
            for f in schema.get("fields", []):
                _walk(f["type"], inner, defined, used)
        elif kind == "array":
            _walk(schema["items"], namespace, defined, used)
        elif kind == "map":
            _walk(schema["values"], namespace, defined, used)
        else:
            _walk(kind, namespace, defined, used)


def _files() -> dict[Path, Any]:
    return {p: json.loads(p.read_text()) for p in sorted(AVRO_DIR.rglob("*.avsc"))}


def test_every_file_declares_its_namespace() -> None:
    files = _files()
    assert len(files) > 100  # the whole contract, results included
    missing = [str(p.relative_to(AVRO_DIR)) for p, s in files.items() if not s.get("namespace")]
    assert not missing, f"no top-level namespace: {missing}"


def test_apache_avro_parses_every_file_in_dependency_order() -> None:
    files = _files()
    owner: dict[str, Path] = {}
    uses: dict[Path, set[str]] = {}
    for path, schema in files.items():
        defined: set[str] = set()
        used: set[str] = set()
        _walk(schema, None, defined, used)
        for name in defined:
            assert name not in owner, f"{name} defined in {owner[name]} and {path}"
            owner[name] = path
        uses[path] = used - defined
    unknown = {f"{p.relative_to(AVRO_DIR)}: {n}" for p, used in uses.items() for n in used if n not in owner}
    assert not unknown, f"references to types no file defines (or in the wrong namespace): {sorted(unknown)}"

    order = TopologicalSorter({p: {owner[n] for n in used} for p, used in uses.items()}).static_order()
    names = Names()
    failures: dict[str, str] = {}
    parsed = 0
    for path in order:
        try:
            avro.schema.make_avsc_object(files[path], names)
            parsed += 1
        except avro.errors.AvroException as exc:
            failures[str(path.relative_to(AVRO_DIR))] = str(exc)[:200]
    assert not failures, f"{len(failures)} of {len(files)} files do not parse: {failures}"
    assert parsed == len(files)
