"""The one adaptor to the Confluent Schema Registry: the client, lookup by id, registration,
and what each failure means to the pipeline (an outage is never the event's fault)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

from consumer.errors import ConsumerError
from consumer.pipeline.codec.schemas import Schema

if TYPE_CHECKING:  # imported when first used: the client is not needed without a registry
    from confluent_kafka.schema_registry import SchemaRegistryClient

REGISTRY_TIMEOUT_S: Final = 5.0


class RegistryUnavailable(ConsumerError):
    """The Schema Registry could not answer (connection refused, timeout, 5xx, auth).

    Not a `DecodeError`: the event is not at fault, so it must not be dead-lettered. The
    worker holds the partition at this event and retries after a backoff.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RegistrationFailed(RegistryUnavailable):
    """A result schema could not be registered (registry down or refusing it): like any
    registry outage, the worker holds the partition and retries; the event is not at fault."""


class NotRegistered(ConsumerError):
    """The registry answered: no Avro schema has this id. The event's fault, not an outage."""


class Registry:
    """A Schema Registry client (`confluent_kafka.schema_registry.SchemaRegistryClient`, or
    anything with its `get_schema`/`register_schema`) with the pipeline's error mapping."""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self.client = client

    @classmethod
    def of(cls, registry: Registry | SchemaRegistryClient) -> Registry:
        """`registry` itself, or a bare client wrapped."""
        return registry if isinstance(registry, Registry) else cls(registry)

    def lookup(self, schema_id: int) -> str:
        """The Avro schema text registered under `schema_id`.

        Raises NotRegistered when the registry says there is none (404, or not Avro), and
        RegistryUnavailable when it cannot say (5xx, 401/403, 429, network, timeout)."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            registered = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise NotRegistered(f"schema id {schema_id} is not registered") from None
            raise RegistryUnavailable(f"schema id {schema_id}: {exc}"[:300]) from None
        except Exception as exc:  # network errors, timeouts
            raise RegistryUnavailable(f"schema id {schema_id}: {type(exc).__name__}: {exc}"[:300]) from None
        if registered.schema_type not in (None, "AVRO"):
            raise NotRegistered(f"schema id {schema_id} is {registered.schema_type}")
        return str(registered.schema_str)

    def register(self, subject: str, schema: Schema, name: str) -> int:
        """Register `schema` (record `name`) under `subject`; its id. Any failure, a refusal
        (an incompatible schema) included, is a RegistrationFailed naming both."""
        from confluent_kafka.schema_registry import Schema as RegistrySchema

        try:
            return int(self.client.register_schema(subject, RegistrySchema(json.dumps(schema), "AVRO")))
        except Exception as exc:  # HTTP errors, refusals: the message says which
            raise RegistrationFailed(f"registering {name} under {subject}: {exc}"[:300]) from None


def connect(url: str | None) -> Registry | None:
    """The registry at `url` (`mock://...` gives confluent-kafka's in-process mock); None without one."""
    if not url:
        return None
    from confluent_kafka.schema_registry import SchemaRegistryClient

    # One try, bounded: the worker retries with its own capped backoff, without blocking the loop.
    return Registry(SchemaRegistryClient.new_client({"url": url, "max.retries": 0, "timeout": REGISTRY_TIMEOUT_S}))
