"""Load the contract from `avro/`: one named type per `.avsc`, linked by name.

Each file holds one named record and refers to the others by name. `SchemaStore`
resolves those names and inlines each definition at its first use, which gives the
self-contained schemas that fastavro, the Apache library and a schema registry accept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, cast

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from consumer.config import environment
from consumer.contract import ENVELOPE, NAMESPACE
from consumer.errors import ConsumerError

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})

Schema = Any  # JSON-shaped Avro schema: str | list | dict


class ContractNotFound(ConsumerError, FileNotFoundError):
    """The `.avsc` contract is not where the worker looked; the message says where and what to do."""


def default_avro_dir() -> Path:
    """`ACTIVITY_AVRO_DIR`, else the contract shipped in the wheel (`consumer/_avro`, mapped
    from the top-level `avro/` at build time), else the `avro/` folder of this checkout."""
    given = environment().avro_dir
    if given:
        return Path(given)
    packaged = resources.files("consumer") / "_avro"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "avro"


def _full(name: str, namespace: str) -> str:
    return name if "." in name else f"{namespace}.{name}"


def _named_in(schema: Schema, namespace: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every named type defined inside `schema` (itself included), with its full name."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _named_in(branch, namespace)
    elif isinstance(schema, dict):
        t = schema.get("type")
        if t in ("record", "error", "enum", "fixed"):
            ns = schema.get("namespace", namespace)
            full = _full(schema["name"], ns)
            yield full, schema
            ns = full.rsplit(".", 1)[0]
            for f in schema.get("fields", []):
                yield from _named_in(f["type"], ns)
        elif t == "array":
            yield from _named_in(schema["items"], namespace)
        elif t == "map":
            yield from _named_in(schema["values"], namespace)
        elif isinstance(t, dict | list):
            yield from _named_in(t, namespace)


class SchemaStore:
    """The named types of one contract directory, and self-contained schemas built from them."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_avro_dir()
        self.files: dict[str, dict[str, Any]] = {}  # full name -> the file's top-level schema
        self.defined_in: dict[str, str] = {}  # full name of any named type -> its file's name
        for path in sorted(self.root.rglob("*.avsc")):
            top = json.loads(path.read_text())
            top_name = _full(top["name"], top.get("namespace", NAMESPACE))
            self.files[top_name] = top
            for full, _ in _named_in(top, top.get("namespace", NAMESPACE)):
                if full in self.defined_in:
                    raise ValueError(f"{full} is defined twice ({path.name})")
                self.defined_in[full] = top_name
        if not self.files:
            raise ContractNotFound(
                f"no Avro contract (.avsc files) under {self.root}: set ACTIVITY_AVRO_DIR to the folder "
                "holding envelope/, data/, types/ and results/, or reinstall customer-activity-consumer"
            )

    def expand(self, name: str) -> dict[str, Any]:
        """A self-contained schema for `name`: each named type defined once, at first use."""
        seen: set[str] = set()
        return cast(dict[str, Any], self._expand(self.files[_full(name, NAMESPACE)], NAMESPACE, seen))

    def _expand(self, schema: Schema, namespace: str, seen: set[str]) -> Schema:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return schema
            full = _full(schema, namespace)
            if full in seen:
                return full
            owner = self.defined_in.get(full)
            if owner is None:
                raise ValueError(f"unknown Avro type {full}")
            if owner != full:
                raise ValueError(f"{full} is an inline type of {owner}; refer to {owner} instead")
            return self._expand(self.files[full], NAMESPACE, seen)
        if isinstance(schema, list):
            return [self._expand(b, namespace, seen) for b in schema]
        t = schema.get("type")
        if t in ("record", "error"):
            ns = schema.get("namespace", namespace)
            full = _full(schema["name"], ns)
            seen.add(full)
            inner_ns = full.rsplit(".", 1)[0]
            fields = [{**f, "type": self._expand(f["type"], inner_ns, seen)} for f in schema["fields"]]
            out = {**schema, "name": full, "fields": fields}
            out.pop("namespace", None)
            return out
        if t in ("enum", "fixed"):
            full = _full(schema["name"], schema.get("namespace", namespace))
            seen.add(full)
            return {**schema, "name": full}
        if t == "array":
            return {**schema, "items": self._expand(schema["items"], namespace, seen)}
        if t == "map":
            return {**schema, "values": self._expand(schema["values"], namespace, seen)}
        if isinstance(t, dict | list):
            return self._expand(t, namespace, seen)
        return schema

    @cached_property
    def envelope(self) -> dict[str, Any]:
        """The writer schema of every event this worker produces (JSON form)."""
        return self.expand(ENVELOPE)

    def type_to_shape(self) -> dict[str, str]:
        """Event type -> short name of its data record (see avro/envelope/type_to_shape.json)."""
        mapping: dict[str, str] = json.loads((self.root / "envelope" / "type_to_shape.json").read_text())
        return mapping


def parsed(schema: Schema) -> dict[str, Any]:
    return cast(dict[str, Any], parse_schema(schema))


def crc64_fingerprint(parsed_schema: Schema) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint of a schema's parsing canonical form, as the
    single-object encoding puts it on the wire (little-endian)."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed_schema), "CRC-64-AVRO"))
