"""Generate the Avro contract in `avro/` from Voucherify's OpenAPI facts.

The OpenAPI description is the source of truth for field names and types; this module
holds the few decisions the OpenAPI text cannot make (how to spell "absent" against
"null", how free-form objects travel, the consents shape that is not published).
Run `make schemas` after changing either; `tests/unit/devtools/test_schemas_in_sync.py` fails
when the committed `.avsc` files drift from what this module would write.

Rules, applied to every record:
- Every field is `["null", T]` with default null, so both old and new readers resolve.
  Null means "absent from the JSON". Fields that the JSON sent as an explicit `null` are
  named in `_json_nulls`, so the JSON round trip is exact.
- JSON members the schema does not know (a field Voucherify adds tomorrow, or a value of
  an unexpected type) are kept in `_extra` as a JSON object text: nothing is dropped.
- Free-form objects (`metadata`, `system_metadata`, `distribution`, ...) are strings of
  JSON text marked `"x-json": true`: lossless for any nesting, cheap to encode.
- OpenAPI `number` is `["long", "double"]` so that `2500` stays an integer.
- `enum`s are strings (listed in `doc`): an enum value Voucherify adds must not make the
  event undecodable.
- `allOf` and `oneOf` merge their parts' properties into one record.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

from consumer.catalogue import CONSENT_TYPES, SEED_TYPES
from consumer.contract import EXTRA, JSON_NULLS, NAMESPACE
from consumer.devtools.corpus import OPENAPI

JSON_MARK = "x-json"

Schema = dict[str, Any]

CONSENT_SHAPE: Schema = {
    "type": "record",
    "name": "EventCustomerConsents",
    "namespace": NAMESPACE,
    "doc": (
        "Data of customer.consents.given and customer.consents.revoked. Voucherify publishes "
        "no schema for these two seed types; this shape is ours. `customer` is the customer "
        "whose consents changed; `consents` lists only the consents that changed in this "
        "event, each as Voucherify's consent object (id `cnst_...`, name, description, "
        "category, created_at, updated_at, object `consent`). `unsubscribed` is true when "
        "the change is Voucherify's special 'unsubscribed' consent."
    ),
    "fields": [
        {"name": "customer", "type": ["null", "SimpleCustomer"], "default": None},
        {
            "name": "consents",
            "type": [
                "null",
                {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Consent",
                        "doc": "One consent that was given or revoked.",
                        "fields": [
                            {"name": "id", "type": ["null", "string"], "default": None},
                            {"name": "name", "type": ["null", "string"], "default": None},
                            {"name": "description", "type": ["null", "string"], "default": None},
                            {"name": "category", "type": ["null", "string"], "default": None},
                            {"name": "created_at", "type": ["null", "string"], "default": None},
                            {"name": "updated_at", "type": ["null", "string"], "default": None},
                            {"name": "object", "type": ["null", "string"], "default": None},
                        ],
                    },
                },
            ],
            "default": None,
        },
        {"name": "unsubscribed", "type": ["null", "boolean"], "default": None},
    ],
}

GENERIC_SHAPE: Schema = {
    "type": "record",
    "name": "GenericActivityData",
    "namespace": NAMESPACE,
    "doc": (
        "Data of an event type this contract has no typed record for (a type Voucherify "
        "adds later). `json` is the data object as JSON text, so nothing is lost."
    ),
    "fields": [{"name": "json", "type": "string", JSON_MARK: True}],
}

EVENT_SOURCE_NAME = "EventSource"


def _consent_shape() -> Schema:
    """CONSENT_SHAPE with the same `_json_nulls`/`_extra` members as generated records."""
    shape = json.loads(json.dumps(CONSENT_SHAPE))
    consent = shape["fields"][1]["type"][1]["items"]
    consent.update(_Generator._with_meta(consent["name"], {}, consent["fields"]))
    consent["doc"] = CONSENT_SHAPE["fields"][1]["type"][1]["items"]["doc"]
    meta = _Generator._with_meta(shape["name"], {}, shape["fields"])
    return {**shape, "fields": meta["fields"]}


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\W]+", name) if part)


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


class _Generator:
    """Turns OpenAPI component schemas into named Avro records."""

    def __init__(self, components: dict[str, Schema]) -> None:
        self.components = components
        self.named: dict[str, Schema] = {}  # component name -> Avro record (own file)
        self._in_progress: set[str] = set()

    def component(self, name: str) -> str:
        """Make sure component `name` exists as a named record and return its name."""
        target = self._alias_target(name)
        if target != name:
            return self.component(target)
        if name in self.named or name in self._in_progress:
            return name
        self._in_progress.add(name)
        self.named[name] = self._record(name, self.components[name])
        self._in_progress.discard(name)
        return name

    def _alias_target(self, name: str) -> str:
        """`X: allOf: [$ref Y]` is Y under another name: keep one record for both."""
        s = self.components[name]
        parts = s.get("allOf")
        if parts and len(parts) == 1 and "$ref" in parts[0] and not s.get("properties"):
            return self._alias_target(_ref_name(parts[0]["$ref"]))
        return name

    def _properties(self, s: Schema) -> dict[str, Schema]:
        """Properties of an object schema, merging allOf/oneOf/anyOf parts in order."""
        props: dict[str, Schema] = {}
        if "$ref" in s:
            props.update(self._properties(self.components[_ref_name(s["$ref"])]))
        for key in ("allOf", "oneOf", "anyOf"):
            for part in s.get(key, []):
                for k, v in self._properties(part).items():
                    props.setdefault(k, v)
        for k, v in s.get("properties", {}).items():
            props[k] = v
        return props

    def _record(self, name: str, s: Schema) -> Schema:
        fields = [
            {"name": k, "type": self._nullable(self._type(v, name + _camel(k))), "default": None}
            for k, v in self._properties(s).items()
        ]
        return self._with_meta(name, s, fields)

    @staticmethod
    def _with_meta(name: str, s: Schema, fields: list[Schema]) -> Schema:
        fields = list(fields)
        fields.append(
            {
                "name": JSON_NULLS,
                "type": ["null", {"type": "array", "items": "string"}],
                "default": None,
                "doc": "Fields the JSON sent as an explicit null (null elsewhere means absent).",
            }
        )
        fields.append(
            {
                "name": EXTRA,
                "type": ["null", {"type": "string", JSON_MARK: True}],
                "default": None,
                "doc": "JSON members this schema does not know, as a JSON object text.",
            }
        )
        record: Schema = {"type": "record", "name": name, "fields": fields}
        if "oneOf" in s or "anyOf" in s:
            record["doc"] = "Union of the OpenAPI alternatives, merged into one record."
        return record

    @staticmethod
    def _nullable(t: Any) -> list[Any]:
        if isinstance(t, list):
            return ["null", *[x for x in t if x != "null"]]
        return ["null", t]

    def _is_object(self, s: Schema) -> bool:
        return s.get("type") == "object" or any(k in s for k in ("properties", "allOf", "oneOf"))

    def _type(self, s: Schema, inline_name: str) -> Any:
        if "$ref" in s:
            name = _ref_name(s["$ref"])
            target = self.components[name]
            if not self._is_object(target) and "oneOf" not in target and "anyOf" not in target:
                return self._type(target, name)  # a named string/number schema: inline it
            return self.component(name)
        for key in ("allOf", "oneOf", "anyOf"):
            parts = s.get(key)
            if parts and len(parts) == 1 and not s.get("properties"):
                return self._type(parts[0], inline_name)
        t = s.get("type")
        if t == "array":
            return {"type": "array", "items": self._type(s.get("items", {}), inline_name + "Item")}
        if "additionalProperties" in s and not s.get("properties"):
            ap = s["additionalProperties"]
            value = self._type(ap, inline_name + "Value") if isinstance(ap, dict) else None
            return {"type": "map", "values": value or {"type": "string", JSON_MARK: True}}
        if self._is_object(s):
            if not self._properties(s):
                return {"type": "string", JSON_MARK: True}
            return self._record(inline_name, s)
        if t == "string":
            if "enum" in s:
                return {"type": "string", "doc": "One of: " + ", ".join(map(str, s["enum"]))}
            return "string"
        if t == "integer":
            return "long"
        if t == "number":
            return ["long", "double"]
        if t == "boolean":
            return "boolean"
        # No type at all: any JSON value.
        return {"type": "string", JSON_MARK: True}


def _shape_of(openapi: Schema, gen: _Generator, event_type: str) -> str:
    component = openapi["type_to_data_schema"].get(event_type)
    return gen.component(component) if component else GENERIC_SHAPE["name"]


def build(openapi: Schema) -> dict[str, Schema]:
    """Return every named schema of the contract: {relative file path: schema}."""
    gen = _Generator(openapi["schemas"])
    type_to_shape: dict[str, str] = {}
    for event_type in openapi["CustomerActivity.type"]:
        type_to_shape[event_type] = _shape_of(openapi, gen, event_type)
    for event_type in CONSENT_TYPES:
        type_to_shape[event_type] = CONSENT_SHAPE["name"]
    gen.component("SimpleCustomer")
    gen.component(EVENT_SOURCE_NAME)

    shapes = sorted({s for s in type_to_shape.values()} - {GENERIC_SHAPE["name"]})
    data_union = [f"{NAMESPACE}.{s}" for s in shapes] + [f"{NAMESPACE}.{GENERIC_SHAPE['name']}"]
    seed_doc = ", ".join(sorted(SEED_TYPES))
    envelope: Schema = {
        "type": "record",
        "name": "CustomerActivity",
        "namespace": NAMESPACE,
        "doc": (
            "Voucherify's Customer Activity object. `type` is the exact type string; `data` "
            "is the typed record of that type's data shape (GenericActivityData for types "
            f"this contract does not know yet). Seed types: {seed_doc}."
        ),
        "fields": [
            {"name": "id", "type": "string", "doc": "evcus_..."},
            {"name": "type", "type": "string", "doc": "Exact Voucherify type string."},
            {"name": "data", "type": data_union},
            {
                "name": "created_at",
                "type": {"type": "long", "logicalType": "timestamp-millis"},
                "doc": "ISO-8601 text on the JSON side, to the millisecond.",
            },
            {
                "name": "created_at_text",
                "type": ["null", "string"],
                "default": None,
                "doc": (
                    "The source's created_at text, kept only when it is not the canonical "
                    "rendering of created_at (Voucherify's own examples carry texts such as "
                    "'2024-05-13T10: 24: 01.084Z'), so the JSON round trip is exact."
                ),
            },
            {"name": "group_id", "type": ["null", "string"], "default": None},
            {
                "name": "event_source",
                "type": ["null", f"{NAMESPACE}.{EVENT_SOURCE_NAME}"],
                "default": None,
            },
            {
                "name": JSON_NULLS,
                "type": ["null", {"type": "array", "items": "string"}],
                "default": None,
                "doc": "Envelope fields the JSON sent as an explicit null (null elsewhere means absent).",
            },
        ],
    }
    shape_docs: dict[str, list[str]] = {}
    for t, s in type_to_shape.items():
        shape_docs.setdefault(s, []).append(t)

    files: dict[str, Schema] = {"envelope/CustomerActivity.avsc": envelope}
    data_names = set(shapes)
    for name, record in gen.named.items():
        record = {**record, "namespace": NAMESPACE}
        if name in shape_docs:
            record.setdefault("doc", "Data of: " + ", ".join(sorted(shape_docs[name])) + ".")
        folder = "data" if name in data_names else "types"
        files[f"{folder}/{name}.avsc"] = record
    files[f"data/{CONSENT_SHAPE['name']}.avsc"] = _consent_shape()
    files[f"data/{GENERIC_SHAPE['name']}.avsc"] = GENERIC_SHAPE
    files["envelope/type_to_shape.json"] = dict(sorted(type_to_shape.items()))
    return files


def write(files: dict[str, Schema], out: Path) -> None:
    for folder in ("envelope", "data", "types"):
        shutil.rmtree(out / folder, ignore_errors=True)
    for rel, schema in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--openapi", type=Path, default=OPENAPI, help="default: the copy shipped in the package")
    p.add_argument("--out", type=Path, default=Path("avro"))
    args = p.parse_args(argv)
    write(build(json.loads(args.openapi.read_text())), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
