"""`activity-consumer tail TOPIC`: any of our topics (input, results, dead letters) as JSON
Lines, for a person looking at a stream. Values in either framing are decoded: single-object
against the contract's own schemas (envelope and results), Confluent by id from the registry."""

from __future__ import annotations

import argparse
import base64
import io
import json
import signal
import struct
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Message, TopicPartition
from fastavro import schemaless_reader

from consumer.cli import _clients
from consumer.config import add_flags, resolved
from consumer.contract import ENVELOPE, RESULTS_NAMESPACE
from consumer.pipeline.codec import AvroCodec, DecodeError
from consumer.pipeline.codec.framing import detect
from consumer.pipeline.codec.json_input import is_json
from consumer.pipeline.codec.registry import NotRegistered, RegistryUnavailable, connect
from consumer.pipeline.codec.schemas import SchemaStore, crc64_fingerprint, parsed


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tail", help="print a topic (input, results or DLQ) as JSON Lines, either framing decoded")
    p.add_argument("topic")
    add_flags(p, ("bootstrap_servers", "schema_registry_url"))
    p.add_argument("--from", dest="start", choices=("beginning", "end"), default="beginning")
    p.add_argument("--follow", action="store_true", help="keep printing new records until Ctrl-C")
    p.add_argument("--max-messages", type=int, metavar="N", help="stop after N records")


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, bytes):
        return base64.b64encode(v).decode("ascii")
    if isinstance(v, Decimal):
        return str(v)
    return v


class ValueDecoder:
    """Framed bytes -> (schema name, JSON value), for events and results alike."""

    def __init__(self, registry_url: str | None) -> None:
        store = SchemaStore()
        self.registry = connect(registry_url)
        self.events = AvroCodec(store, registry=self.registry)
        self.results: dict[bytes, tuple[str, dict[str, Any]]] = {}
        for name in store.files:
            if name.startswith(RESULTS_NAMESPACE + "."):
                schema = parsed(store.expand(name))
                self.results[crc64_fingerprint(schema)] = (name, schema)
        self._by_id: dict[int, tuple[str, dict[str, Any]]] = {}

    def decode(self, value: bytes) -> tuple[str, Any]:
        if is_json(value):  # an input event written as JSON (a delivery or a bare activity)
            return ENVELOPE, self.events.decode_json(value)
        framing = detect(value)
        if framing == "single-object":
            found = self.results.get(value[2:10])
            if found is not None:
                return found[0], _jsonable(self._read(value, 10, found[1]))
            return ENVELOPE, self.events.decode_json(value)
        if len(value) < 5:
            raise DecodeError("truncated", "Confluent header is shorter than 5 bytes", framing)
        (schema_id,) = struct.unpack_from(">I", value, 1)
        name, schema = self._writer(schema_id)
        if name == ENVELOPE:
            return name, self.events.decode_json(value)  # the JSON form the producers sent
        return name, _jsonable(self._read(value, 5, schema))

    def _writer(self, schema_id: int) -> tuple[str, dict[str, Any]]:
        found = self._by_id.get(schema_id)
        if found is None:
            if self.registry is None:
                raise DecodeError(
                    "unknown_schema_id", "Confluent-framed value: give --schema-registry-url", "confluent"
                )
            try:
                text = self.registry.lookup(schema_id)
            except (NotRegistered, RegistryUnavailable) as exc:  # shown on the line, as any unreadable value
                raise DecodeError("unknown_schema_id", str(exc)[:200], "confluent") from None
            try:
                schema = parsed(json.loads(text))
            except Exception as exc:  # a schema fastavro cannot read: name it
                raise DecodeError("unknown_schema_id", f"schema id {schema_id}: {exc}"[:200], "confluent") from None
            found = self._by_id[schema_id] = (str(schema.get("name", "?")), schema)
        return found

    @staticmethod
    def _read(value: bytes, offset: int, schema: dict[str, Any]) -> Any:
        buf = io.BytesIO(value)
        buf.seek(offset)
        try:
            return schemaless_reader(buf, schema, None)
        except Exception as exc:  # truncated or corrupt body
            raise DecodeError("malformed", f"{type(exc).__name__}: {exc}"[:200]) from None


def line_of(msg: Message, decoder: ValueDecoder) -> dict[str, Any]:
    key = msg.key()
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    out: dict[str, Any] = {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp": msg.timestamp()[1],
        "key": key.decode("utf-8", "replace") if isinstance(key, bytes) else key,
        "headers": {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for k, v in pairs},
    }
    value = msg.value()
    if value is None:
        out["value"] = None
        return out
    try:
        out["schema"], out["value"] = decoder.decode(value)
    except DecodeError as exc:
        out["error"] = str(exc)
        out["value_base64"] = base64.b64encode(value).decode("ascii")
    return out


def run(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    if args.max_messages is not None and args.max_messages < 1:
        err.write(f"error: --max-messages {args.max_messages}: must be >= 1\n")
        return 2
    bootstrap = resolved("bootstrap_servers", args.bootstrap_servers)
    decoder = ValueDecoder(resolved("schema_registry_url", args.schema_registry_url))
    consumer = Consumer(_clients.reader_config(bootstrap))
    stop = False

    def on_signal(_sig: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGINT, on_signal)
    try:
        md = consumer.list_topics(args.topic, timeout=30)
        meta = md.topics.get(args.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            err.write(f"error: cannot read topic {args.topic!r}: it does not exist or has no partitions\n")
            return 1
        start = OFFSET_BEGINNING if args.start == "beginning" else OFFSET_END
        consumer.assign([TopicPartition(args.topic, p, start) for p in sorted(meta.partitions)])
        open_partitions = set(meta.partitions)
        printed = 0
        while not stop and (args.follow or open_partitions):
            for msg in consumer.consume(500, 0.5):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        open_partitions.discard(msg.partition() or 0)
                        continue
                    err.write(f"error: reading {args.topic}: {error.str()}\n")
                    return 1
                out.write(json.dumps(line_of(msg, decoder), ensure_ascii=False) + "\n")
                printed += 1
                if args.max_messages is not None and printed >= args.max_messages:
                    stop = True
                    break
            out.flush()
        return 0
    except KafkaException as exc:
        err.write(f"error: Kafka at {bootstrap}: {exc.args[0].str() if exc.args else exc}\n")
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
        consumer.close()
