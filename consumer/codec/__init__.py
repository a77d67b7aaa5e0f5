"""Framing detection, fastavro read/write, and JSON <-> Avro conversion."""

from consumer.codec.avro_codec import DEFAULT_SUBJECT, AvroCodec
from consumer.codec.framing import FRAMINGS, DecodeError, Framing
from consumer.codec.jsonavro import EncodeError
from consumer.codec.schemas import SchemaStore

__all__ = [
    "DEFAULT_SUBJECT",
    "FRAMINGS",
    "AvroCodec",
    "DecodeError",
    "EncodeError",
    "Framing",
    "SchemaStore",
]
