"""Encode and decode framed Customer Activity events: fastavro, or cavro where it reads cleanly."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from consumer.config import AvroEngine
from consumer.pipeline.codec.engines import CavroDecoder, cavro_decoder, resolve
from consumer.pipeline.codec.framing import (
    Confluent,
    DecodeError,
    Framing,
    SingleObject,
    WriterSchema,
    detect,
)
from consumer.pipeline.codec.json_input import JSON_FRAMING, activity_of, is_json, not_activity
from consumer.pipeline.codec.jsonavro import ActivityConverter, Converters, EncodeError
from consumer.pipeline.codec.registry import Registry
from consumer.pipeline.codec.schemas import SchemaStore

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

DEFAULT_SUBJECT = "customer-activity-value"


class AvroCodec:
    """Customer Activity events <-> framed Avro bytes.

    Writes with one framing; reads both, choosing by the leading bytes. Events written
    with an older or newer schema are resolved against the current one; an event whose
    data branch the current schema lacks decodes as `GenericActivityData`.

    `engine` picks who reads bodies (`engines.resolve`). With cavro, fastavro still reads
    every body cavro does not read cleanly, so both engines give the same answers. Writing
    events (the CLI, the demo) always uses fastavro: it is not on the worker's path.
    """

    def __init__(
        self,
        store: SchemaStore | None = None,
        *,
        framing: Framing = "single-object",
        registry: Registry | SchemaRegistryClient | None = None,  # registry.connect's, or a bare client to wrap
        subject: str = DEFAULT_SUBJECT,
        known_writers: tuple[Any, ...] = (),
        engine: AvroEngine = "auto",
    ) -> None:
        self.store = store or SchemaStore()
        self.engine = resolve(engine)
        self.current = WriterSchema.of(self.store.envelope)
        self.converter = ActivityConverter(self.store.envelope, self.store.type_to_shape())
        self.single_object = SingleObject(self.current, tuple(WriterSchema.of(s) for s in known_writers))
        self.confluent = Confluent(Registry.of(registry), subject, self.current) if registry is not None else None
        if framing == "confluent" and self.confluent is None:
            raise ValueError("the confluent framing needs a schema registry client")
        self.framing: Framing = framing
        self._writer_converters: dict[int, Converters] = {}
        self._cavro: dict[int, CavroDecoder | None] = {}  # id(writer) -> its decoder; None: fastavro

    # -- writing --------------------------------------------------------------------------
    def _body(self, record: dict[str, Any]) -> bytes:
        """The unframed Avro body of a record, written with the current schema."""
        buf = io.BytesIO()
        try:
            schemaless_writer(buf, self.current.parsed, record)
        except (ValueError, TypeError, OverflowError, UnicodeError) as exc:
            raise EncodeError(f"cannot be written as Avro: {type(exc).__name__}: {exc}"[:300]) from None
        return buf.getvalue()

    def encode_record(self, record: dict[str, Any]) -> bytes:
        body = self._body(record)
        if self.framing == "confluent":
            assert self.confluent is not None
            return self.confluent.frame(body)
        return self.single_object.frame(body)

    def encode_json(self, activity: Any) -> bytes:
        """Activity JSON to framed bytes; raises `EncodeError` naming what is wrong."""
        return self.encode_record(self.converter.to_avro(activity))

    # -- reading --------------------------------------------------------------------------
    def writer_of(self, payload: bytes) -> tuple[WriterSchema, int, Framing]:
        framing = detect(payload)
        if framing == "single-object":
            writer, offset = self.single_object.writer(payload)
        else:
            if self.confluent is None:
                raise DecodeError("unknown_schema_id", "Confluent-framed event but no schema registry", framing)
            writer, offset = self.confluent.writer(payload)
        return writer, offset, framing

    def decode(self, payload: bytes) -> dict[str, Any]:
        """Framed bytes to an envelope record whose `data` is the data record (a dict).

        `branch_of(record)` names the data record; fastavro is not asked to name union
        branches, which costs about a quarter of the decode. JSON text (a webhook delivery or
        a bare activity) is encoded and read back: the record its Avro twin decodes to.
        """
        if is_json(payload):
            return self._decode_json_text(payload)
        writer, offset, framing = self.writer_of(payload)
        if self.engine == "cavro":
            key = id(writer)
            if key not in self._cavro:
                self._cavro[key] = cavro_decoder(writer.raw, self.current.raw)
            fast = self._cavro[key]
            if fast is not None:
                record = fast.decode(payload, offset)
                if record is not None:
                    return record
        # fastavro: the only engine, or the reference for whatever cavro did not read cleanly
        try:
            return self._read(payload, offset, writer, self.current, framing)
        except SchemaResolutionError:
            return self._decode_unknown_branch(payload, offset, writer, framing)

    def _decode_json_text(self, payload: bytes) -> dict[str, Any]:
        activity = activity_of(payload)
        try:
            body = self._body(self.converter.to_avro(activity))
        except EncodeError as exc:
            raise not_activity(str(exc)) from None
        except RecursionError:
            raise not_activity("the activity nests too deeply") from None
        return self._read(body, 0, self.current, self.current, JSON_FRAMING)

    @property
    def registry_healthy(self) -> bool:
        """False from a failed registry lookup until one succeeds."""
        return self.confluent is None or self.confluent.healthy

    def retry_registry(self) -> None:
        """Let the next lookup reach the registry again (after a `RegistryUnavailable`)."""
        if self.confluent is not None:
            self.confluent.retry()

    def branch_of(self, record: dict[str, Any]) -> str:
        return self.converter.branch_of(record)

    @staticmethod
    def _read(
        payload: bytes, offset: int, writer: WriterSchema, reader: WriterSchema, framing: str, names: bool = False
    ) -> dict[str, Any]:
        buf = io.BytesIO(payload)
        buf.seek(offset)
        try:
            record: Any = schemaless_reader(
                buf,
                writer.parsed,
                None if reader is writer else reader.parsed,
                return_record_name=names,
                return_record_name_override=names,
            )
        except SchemaResolutionError:
            raise
        except (EOFError, IndexError, StopIteration):
            raise DecodeError("truncated", "the Avro body ends early", framing) from None
        except Exception as exc:  # fastavro raises many types on garbage; all mean one thing
            raise DecodeError("malformed", f"{type(exc).__name__}: {exc}"[:200], framing) from None
        if buf.tell() != len(payload):
            raise DecodeError("trailing_bytes", f"{len(payload) - buf.tell()} bytes after the record", framing)
        if type(record) is not dict or "data" not in record:
            raise DecodeError("malformed", "not a Customer Activity record", framing)
        return record

    def _decode_unknown_branch(self, payload: bytes, offset: int, writer: WriterSchema, framing: str) -> dict[str, Any]:
        """The writer's data branch is newer than ours: keep the data as untyped JSON."""
        record = self._read(payload, offset, writer, writer, framing, names=True)
        data = record.get("data")
        if not (
            isinstance(record.get("id"), str)
            and isinstance(record.get("type"), str)
            and "created_at" in record
            and isinstance(data, tuple)
            and isinstance(data[1], dict)
        ):
            raise DecodeError("incompatible_schema", "the writer schema is not a Customer Activity", framing)
        try:
            conv = self._writer_converters.get(id(writer))
            if conv is None:
                conv = self._writer_converters[id(writer)] = Converters(writer.raw)
            branch, fields = data
            as_json = conv.dec[branch](fields) if branch in conv.dec else fields
            text = json.dumps(as_json, ensure_ascii=False, default=str)
        except (ValueError, TypeError, KeyError) as exc:
            raise DecodeError("incompatible_schema", f"{type(exc).__name__}: {exc}"[:200], framing) from None
        record["data"] = {"json": text}
        record["event_source"] = record.get("event_source") if isinstance(record.get("event_source"), dict) else None
        return record

    def decode_json(self, payload: bytes) -> dict[str, Any]:
        record = self.decode(payload)
        try:
            return self.converter.to_json(record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # broken JSON text inside the record
            raise DecodeError("malformed", f"embedded JSON: {type(exc).__name__}: {exc}"[:200]) from None
