"""Voucherify activity JSON <-> Avro records of the contract, with no loss.

Converters are compiled once per schema into closures, so the per-event cost is a walk
of the event itself. Every union value is written in fastavro's tuple notation
(`(branch, value)`), which spares fastavro its costly search for a matching branch.
See `schemagen` for the rules (`_json_nulls`, `_extra`, `x-json`) this module applies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from consumer.catalogue import canonical
from consumer.contract import EVENT_SOURCE, EXTRA, GENERIC, JSON_NULLS, NAMESPACE
from consumer.errors import ConsumerError
from consumer.pipeline.codec.schemas import Schema

JSON_MARK = "x-json"

Enc = Callable[[Any], Any]
Dec = Callable[[Any], Any]


_PYTHON_TYPES: dict[str, type] = {"string": str, "double": float, "float": float, "boolean": bool, "bytes": bytes}


class EncodeError(ConsumerError, ValueError):
    """JSON that cannot become a Customer Activity record; the message says why."""


class _Mismatch(ConsumerError):
    """A JSON value does not fit its field's type; the caller keeps it in `_extra`."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def iso_to_ms(text: str) -> int:
    """ISO-8601 (`...Z` or an offset; stray blanks tolerated) to epoch milliseconds."""
    dt = datetime.fromisoformat(text.replace(" ", ""))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000 + (0.5 if dt.timestamp() >= 0 else -0.5))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_to_iso(value: int | datetime) -> str:
    """Epoch milliseconds (or fastavro's datetime) to `YYYY-MM-DDTHH:MM:SS.mmmZ`."""
    dt = value if isinstance(value, datetime) else _EPOCH + timedelta(milliseconds=value)
    dt = dt.astimezone(UTC)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}."
        f"{dt.microsecond // 1000:03d}Z"
    )


def _branch_name(schema: Schema) -> str:
    if isinstance(schema, str):
        return schema
    t = schema["type"]
    return str(schema["name"]) if t in ("record", "enum", "fixed") else str(t)


class Converters:
    """Compiled JSON->Avro (`enc`) and Avro->JSON (`dec`) functions for one schema's types."""

    def __init__(self, schema: Schema) -> None:
        self.enc: dict[str, Enc] = {}
        self.dec: dict[str, Dec] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._collect(schema, NAMESPACE)
        root = schema.get("name") if isinstance(schema, dict) else None
        for name, record in self._records.items():
            if name != root:  # the envelope's data union is the caller's to handle
                self.enc[name], self.dec[name] = self._compile_record(record)

    def _collect(self, schema: Schema, ns: str) -> None:
        if isinstance(schema, list):
            for b in schema:
                self._collect(b, ns)
        elif isinstance(schema, dict):
            t = schema.get("type")
            if t == "record":
                name = schema["name"] if "." in schema["name"] else f"{ns}.{schema['name']}"
                self._records[name] = {**schema, "name": name}
                for f in schema["fields"]:
                    self._collect(f["type"], name.rsplit(".", 1)[0])
            elif t == "array":
                self._collect(schema["items"], ns)
            elif t == "map":
                self._collect(schema["values"], ns)

    # Each value compiler returns (enc, dec); dec None means "the Avro value is the JSON value".
    def _value(self, schema: Schema) -> tuple[Enc, Dec | None]:
        if isinstance(schema, list):
            return self._union(schema)
        if isinstance(schema, str):
            if schema in self._records or f"{NAMESPACE}.{schema}" in self._records:
                name = schema if schema in self._records else f"{NAMESPACE}.{schema}"
                return self._record_ref(name)
            return self._primitive(schema), None
        t = schema["type"]
        if t == "record":
            return self._record_ref(schema["name"])
        if t == "array":
            item_enc, item_dec = self._value(schema["items"])

            def enc_array(v: Any) -> Any:
                if type(v) is not list:
                    raise _Mismatch
                return [item_enc(x) for x in v]

            if item_dec is None:
                return enc_array, None
            idec = item_dec
            return enc_array, lambda v: [idec(x) for x in v]
        if t == "map":
            val_enc, val_dec = self._value(schema["values"])

            def enc_map(v: Any) -> Any:
                if type(v) is not dict:
                    raise _Mismatch
                return {k: val_enc(x) for k, x in v.items()}

            if val_dec is None:
                return enc_map, None
            vdec = val_dec
            return enc_map, lambda v: {k: vdec(x) for k, x in v.items()}
        if t == "string" and schema.get(JSON_MARK):
            return _dumps, json.loads
        if t in ("enum", "fixed"):  # only in writer schemas newer than ours; strings either way
            return self._primitive("string" if t == "enum" else "bytes"), None
        return self._primitive(t), None

    @staticmethod
    def _primitive(t: str) -> Enc:
        if t in ("long", "int"):

            def enc_long(v: Any) -> Any:
                if type(v) is not int or not -(2**63) <= v < 2**63:
                    raise _Mismatch
                return v

            return enc_long
        python_type = _PYTHON_TYPES.get(t)
        if python_type is None:
            raise ValueError(f"unsupported Avro type {t}")

        def enc_exact(v: Any) -> Any:
            if type(v) is not python_type:  # exact: True is not a long, 1 is not a double
                raise _Mismatch
            return v

        return enc_exact

    def _record_ref(self, name: str) -> tuple[Enc, Dec]:
        # Late-bound: records may refer to themselves or to records compiled later.
        def enc_rec(v: Any) -> Any:
            if type(v) is not dict:
                raise _Mismatch
            return self.enc[name](v)

        return enc_rec, lambda v: self.dec[name](v)

    def _union(self, branches: list[Any]) -> tuple[Enc, Dec | None]:
        non_null = [b for b in branches if b != "null"]
        compiled = [(_branch_name(b), *self._value(b)) for b in non_null]
        if len(compiled) == 1:
            (bname, benc, bdec) = compiled[0]

            def enc_one(v: Any) -> Any:
                return (bname, benc(v))

            return enc_one, bdec

        # ["long", "double"] and the like: the first branch that accepts the value.
        def enc_any(v: Any) -> Any:
            for bname, benc, _ in compiled:
                try:
                    return (bname, benc(v))
                except _Mismatch:
                    continue
            raise _Mismatch

        decs = {bname: bdec for bname, _, bdec in compiled if bdec is not None}
        if not decs:
            return enc_any, None

        def dec_any(v: Any) -> Any:
            # fastavro names the branch (return_record_name) when a union holds several records.
            if type(v) is tuple:
                name, inner = v
                d = decs.get(name)
                return inner if d is None else d(inner)
            return v

        return enc_any, dec_any

    def _compile_record(self, record: dict[str, Any]) -> tuple[Enc, Dec]:
        field_enc: dict[str, Enc] = {}
        field_dec: list[tuple[str, Dec | None]] = []
        for f in record["fields"]:
            if f["name"] in (JSON_NULLS, EXTRA):
                continue
            enc, dec = self._value(f["type"])
            field_enc[f["name"]] = enc
            field_dec.append((f["name"], dec))
        has_meta = any(f["name"] == EXTRA for f in record["fields"])

        def enc_record(obj: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            nulls: list[str] | None = None
            extra: dict[str, Any] | None = None
            for k, v in obj.items():
                fenc = field_enc.get(k)
                if fenc is not None:
                    if v is None:
                        if nulls is None:
                            nulls = []
                        nulls.append(k)
                        continue
                    try:
                        out[k] = fenc(v)
                        continue
                    except _Mismatch:
                        pass
                elif not has_meta:
                    raise _Mismatch
                if extra is None:
                    extra = {}
                extra[k] = v
            if nulls is not None:
                if not has_meta:
                    raise _Mismatch
                out[JSON_NULLS] = ("array", nulls)
            if extra is not None:
                if not has_meta:
                    raise _Mismatch
                out[EXTRA] = ("string", _dumps(extra))
            return out

        def dec_record(rec: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, fdec in field_dec:
                v = rec.get(k)
                if v is not None:
                    out[k] = v if fdec is None else fdec(v)
            nulls = rec.get(JSON_NULLS)
            if nulls:
                for k in nulls:
                    out[k] = None
            extra = rec.get(EXTRA)
            if extra:
                out.update(json.loads(extra))
            return out

        return enc_record, dec_record


class ActivityConverter:
    """Whole Customer Activity events: JSON <-> the envelope record."""

    def __init__(self, envelope_schema: Schema, type_to_shape: dict[str, str]) -> None:
        self.converters = Converters(envelope_schema)
        self.shape_of = {t: f"{NAMESPACE}.{s}" for t, s in type_to_shape.items()}

    def to_avro(self, activity: Any) -> dict[str, Any]:
        """Activity JSON (flat `data`, or the OpenAPI's nested `data.data`) to a record."""
        if type(activity) is not dict:
            raise EncodeError("an activity must be a JSON object")
        unknown = activity.keys() - {"id", "type", "data", "created_at", "group_id", "event_source"}
        if unknown:
            raise EncodeError(f"unknown envelope field(s): {', '.join(sorted(unknown))}")
        for key in ("id", "type", "created_at"):
            if type(activity.get(key)) is not str:
                raise EncodeError(f"'{key}' must be a string")
        try:
            created_at = iso_to_ms(activity["created_at"])
        except ValueError:
            raise EncodeError(f"'created_at' is not ISO-8601: {activity['created_at']!r}") from None
        data = activity.get("data")
        event_source = activity.get("event_source")
        if type(data) is dict and data.keys() <= {"data", "event_source"} and "data" in data:
            event_source = data.get("event_source", event_source)
            data = data["data"]
        if type(data) is not dict:
            raise EncodeError("'data' must be a JSON object")
        shape = self.shape_of.get(canonical(activity["type"]), GENERIC)
        encoded = self._data(shape, data)
        source = None
        if event_source is not None:
            if type(event_source) is not dict:
                raise EncodeError("'event_source' must be an object or null")
            source = (EVENT_SOURCE, self.converters.enc[EVENT_SOURCE](event_source))
        group_id = activity.get("group_id")
        if group_id is not None and type(group_id) is not str:
            raise EncodeError("'group_id' must be a string or null")
        nulls = [k for k in ("group_id", "event_source") if k in activity and activity[k] is None]
        text = activity["created_at"]
        return {
            "id": activity["id"],
            "type": activity["type"],
            "data": encoded,
            "created_at": created_at,
            "created_at_text": None if ms_to_iso(created_at) == text else ("string", text),
            "group_id": None if group_id is None else ("string", group_id),
            "event_source": source,
            JSON_NULLS: ("array", nulls) if nulls else None,
        }

    def _data(self, shape: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if shape != GENERIC:
            try:
                return (shape, self.converters.enc[shape](data))
            except _Mismatch:  # a top-level member of the wrong type: keep it all, untyped
                pass
        return (GENERIC, {"json": _dumps(data)})

    def data_to_json(self, branch: str, data: dict[str, Any]) -> dict[str, Any]:
        if branch == GENERIC:
            value = json.loads(data["json"])
            if type(value) is not dict:
                raise ValueError("GenericActivityData.json is not a JSON object")
            return value
        return self.converters.dec[branch](data)  # type: ignore[no-any-return]

    def branch_of(self, record: dict[str, Any]) -> str:
        """The data record a decoded envelope holds: its type's shape, unless the data
        travelled untyped (a type we do not know, or data that did not fit its shape)."""
        data = record["data"]
        if len(data) == 1 and "json" in data:
            return GENERIC
        return self.shape_of.get(canonical(record["type"]), GENERIC)

    def to_json(self, record: dict[str, Any]) -> dict[str, Any]:
        """A decoded envelope record back to JSON."""
        data = record["data"]
        branch = self.branch_of(record)
        out: dict[str, Any] = {
            "id": record["id"],
            "type": record["type"],
            "data": self.data_to_json(branch, data),
            "created_at": record.get("created_at_text") or ms_to_iso(record["created_at"]),
        }
        if record.get("group_id") is not None:
            out["group_id"] = record["group_id"]
        if record.get("event_source") is not None:
            out["event_source"] = self.converters.dec[EVENT_SOURCE](record["event_source"])
        for key in record.get(JSON_NULLS) or ():
            out[key] = None
        return out
