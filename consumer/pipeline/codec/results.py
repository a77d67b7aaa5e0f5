"""Encode handler results as single-object Avro, one writer schema per result kind."""

from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_writer

from consumer.contract import RESULTS_NAMESPACE
from consumer.pipeline.codec.framing import SINGLE_OBJECT_MAGIC
from consumer.pipeline.codec.schemas import SchemaStore, crc64_fingerprint, parsed


class ResultEncoder:
    """Result values -> framed bytes; downstream readers resolve the fingerprint from avro/."""

    def __init__(self, store: SchemaStore) -> None:
        self._kinds: dict[str, tuple[dict[str, Any], bytes]] = {}
        for name in store.files:
            if name.startswith(RESULTS_NAMESPACE + "."):
                schema = parsed(store.expand(name))
                self._kinds[name] = (schema, SINGLE_OBJECT_MAGIC + crc64_fingerprint(schema))

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._kinds)

    def encode(self, schema_name: str, value: dict[str, Any]) -> bytes:
        schema, header = self._kinds[schema_name]
        buf = io.BytesIO()
        buf.write(header)
        schemaless_writer(buf, schema, value)
        return buf.getvalue()
