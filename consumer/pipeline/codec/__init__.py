"""Framing detection, fastavro read/write, JSON <-> Avro conversion, and the Schema Registry."""

from consumer.pipeline.codec.avro_codec import DEFAULT_SUBJECT, AvroCodec
from consumer.pipeline.codec.framing import FRAMINGS, DecodeError, Framing
from consumer.pipeline.codec.jsonavro import EncodeError
from consumer.pipeline.codec.registry import RegistrationFailed, Registry, RegistryUnavailable
from consumer.pipeline.codec.schemas import SchemaStore

__all__ = [
    "DEFAULT_SUBJECT",
    "FRAMINGS",
    "AvroCodec",
    "DecodeError",
    "EncodeError",
    "Framing",
    "RegistrationFailed",
    "Registry",
    "RegistryUnavailable",
    "SchemaStore",
]
