"""Framing detection, fastavro read/write, and JSON <-> Avro conversion."""

from consumer.pipeline.codec.avro_codec import DEFAULT_SUBJECT, AvroCodec
from consumer.pipeline.codec.framing import FRAMINGS, DecodeError, Framing, RegistryUnavailable
from consumer.pipeline.codec.jsonavro import EncodeError
from consumer.pipeline.codec.schemas import SchemaStore

__all__ = [
    "DEFAULT_SUBJECT",
    "FRAMINGS",
    "AvroCodec",
    "DecodeError",
    "EncodeError",
    "Framing",
    "RegistryUnavailable",
    "SchemaStore",
]
