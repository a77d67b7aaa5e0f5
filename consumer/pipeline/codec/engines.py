"""Avro engines: fastavro, the reference that is always installed, and cavro, a Cython engine
about 3.5x faster at decoding this contract and 1.8x faster at encoding its results.

cavro only answers what it decodes or encodes cleanly. Everything else (an error of any kind,
trailing bytes, a writer it cannot resolve) goes to fastavro, so that both engines give the same
records and the same `DecodeError`s; tests/conformance/test_engine_differential.py checks that.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from functools import lru_cache
from typing import Any, Final, Literal

from consumer.config import AVRO_ENGINES
from consumer.errors import ConsumerError
from consumer.pipeline.codec.schemas import Schema

Engine = Literal["fastavro", "cavro"]  # what a choice resolves to

# cavro's MemoryReader ignores bytes after the value and does not say where it stopped. The
# body is read with these bytes appended, as one more field: if the field does not read back
# as them, the value did not end where the payload does (trailing bytes, or a truncated body).
# Random per process, so that no payload can carry them on purpose.
_END: Final = os.urandom(16)
_END_FIELD: Final = {"name": "end", "type": {"type": "fixed", "name": "FramedEnd", "size": len(_END)}}


class EngineUnavailable(ConsumerError, RuntimeError):
    """`cavro` was asked for where it does not import (it has wheels for CPython < 3.13 only)."""


def cavro_module() -> Any:
    """The cavro module, or None where it is not installed."""
    try:
        import cavro
    except ImportError:
        return None
    return cavro


def resolve(choice: str) -> Engine:
    """The engine a setting names: `auto` is cavro where it imports, else fastavro."""
    if choice == "fastavro":
        return "fastavro"
    if choice not in ("auto", "cavro"):
        raise ValueError(f"unknown Avro engine {choice!r}: use one of {', '.join(AVRO_ENGINES)}")
    if cavro_module() is not None:
        return "cavro"
    if choice == "cavro":
        raise EngineUnavailable("the cavro Avro engine is not installed (it has wheels for CPython < 3.13 only)")
    return "fastavro"


def version(engine: Engine) -> str:
    try:
        return importlib.metadata.version(engine)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class CavroDecoder:
    """Avro bodies written with one schema, read as another, by cavro; None for anything but a
    clean read, which the caller then gives to fastavro."""

    __slots__ = ("_read",)

    def __init__(self, resolved: Any) -> None:
        self._read = resolved.binary_decode

    def decode(self, payload: bytes, offset: int) -> dict[str, Any] | None:
        try:
            framed = self._read(payload[offset:] + _END)
        except Exception:  # fastavro decides, and names, every failure
            return None
        if framed["end"] != _END:
            return None
        record: dict[str, Any] = framed["v"]
        return record


def cavro_decoder(writer: Schema, reader: Schema) -> CavroDecoder | None:
    """A decoder for bodies written with `writer`, read as `reader`; None where fastavro must read them."""
    return _cavro_decoder(json.dumps(writer, sort_keys=True), json.dumps(reader, sort_keys=True))


# Resolving a writer that differs from the reader takes cavro seconds on this contract: once per
# writer per process, shared by every codec.
@lru_cache(maxsize=32)
def _cavro_decoder(writer_json: str, reader_json: str) -> CavroDecoder | None:
    cavro = cavro_module()
    if cavro is None:
        return None
    options = cavro.DEFAULT_OPTIONS.replace(record_decodes_to_dict=True)
    try:
        reader = cavro.Schema(_framed(json.loads(reader_json)), options)
        if writer_json == reader_json:
            return CavroDecoder(reader)
        writer = cavro.Schema(_framed(json.loads(writer_json)), options)
        # A writer type the reader lacks (a new union branch) makes cavro raise on each such
        # event with the whole schema in its message, about 4 ms: fastavro reads that writer.
        if not set(writer.named_types) <= set(reader.named_types):
            return None
        return CavroDecoder(reader.reader_for_writer(writer))
    except Exception:  # a schema cavro rejects (it is stricter): fastavro reads it
        return None


def _framed(body: Schema) -> dict[str, Any]:
    return {"type": "record", "name": "Framed", "fields": [{"name": "v", "type": body}, _END_FIELD]}


class CavroEncoder:
    """Values -> Avro bodies by cavro; None for anything cavro refuses, which fastavro then writes."""

    __slots__ = ("_write",)

    def __init__(self, schema: Schema) -> None:
        cavro = cavro_module()
        if cavro is None:
            raise EngineUnavailable("cavro is not installed")
        self._write = cavro.Schema(schema, cavro.DEFAULT_OPTIONS).binary_encode

    def encode(self, value: dict[str, Any]) -> bytes | None:
        try:
            body: bytes = self._write(value)
        except Exception:  # fastavro raises its own error for the same value
            return None
        return body
