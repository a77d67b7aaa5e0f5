"""`activity-consumer ingest`: the gateway's process, from start to a clean stop.

SIGTERM or SIGINT: readiness goes 503, the listening socket closes, the requests in flight
are answered (each waits at most its ack bound), the producer is flushed, exit 0, all
within the shutdown grace.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from aiohttp import web
from confluent_kafka import KafkaException
from prometheus_client import CollectorRegistry

from consumer.config import GatewaySettings
from consumer.ingest.gateway import Gateway
from consumer.ingest.metrics import GatewayMetrics
from consumer.ingest.publisher import Publisher, producer_config
from consumer.pipeline.codec import AvroCodec
from consumer.pipeline.codec.registry import connect
from consumer.pipeline.topics import create_topics, partition_counts
from consumer.telemetry.logs import get as get_logger

log = get_logger("gateway")


class _ToStructlog(logging.Handler):
    """aiohttp's own log lines (bad HTTP from a client, mostly) as structlog events, no tracebacks."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            method = "warning" if record.levelno >= logging.WARNING else "debug"
            getattr(get_logger(record.name), method)(record.getMessage()[:300])
        except Exception:
            self.handleError(record)


def route_aiohttp_logs() -> None:
    root = logging.getLogger("aiohttp")
    if not any(isinstance(h, _ToStructlog) for h in root.handlers):
        root.addHandler(_ToStructlog())
    root.propagate = False


class GatewayServer:
    """The gateway on a real port; `start()` then `stop()` (tests run it in-process)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.metrics = GatewayMetrics(self.registry)
        self.codec = AvroCodec(framing=settings.framing, registry=connect(settings.schema_registry_url))
        self.gateway: Gateway | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        route_aiohttp_logs()
        loop = asyncio.get_running_loop()
        config = producer_config(self.settings.bootstrap_servers, self.settings.kafka)
        # A dead letter is the whole body: librdkafka's default limit (1,000,000) is under the body limit's.
        limit = max(int(config.get("message.max.bytes", 1_000_000)), self.settings.max_body_bytes + 65_536)
        config["message.max.bytes"] = limit
        publisher = Publisher(config, self.metrics, window=self.settings.dedupe_window, loop=loop)
        self.gateway = Gateway(self.settings, self.codec, publisher, self.metrics, self.registry)
        if self.codec.confluent is not None:
            await loop.run_in_executor(None, self._register_schema)
        await loop.run_in_executor(None, self._ensure_dead_letter_topic)
        grace = self.settings.shutdown_grace_seconds
        # In-flight requests wait at most their ack bound; what is left of the grace flushes.
        self._runner = web.AppRunner(self.gateway.app(), access_log=None, shutdown_timeout=max(grace - 1.0, 0.5))
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("gateway_listening", host=self.settings.host, port=self.port, settings=self.settings.redacted())

    def _ensure_dead_letter_topic(self) -> None:
        """Create the dead-letter topic, with the input topic's partitions, when it is missing. Not
        fatal: without it (no ACL to create, broker away) a dead letter is answered 503 and re-sent."""
        topic, kafka = self.settings.dead_letter_topic(), self.settings.kafka
        try:
            counts = partition_counts(self.settings.bootstrap_servers, [topic, str(self.settings.topic)], kafka=kafka)
            if topic not in counts:
                partitions = counts.get(str(self.settings.topic), 1)
                create_topics(self.settings.bootstrap_servers, {topic: partitions}, kafka=kafka, timeout_s=10)
        except (KafkaException, TimeoutError) as exc:
            log.warning("dead_letter_topic_unavailable", topic=topic, error=str(exc)[:200])

    def _register_schema(self) -> None:
        """Confluent framing: the schema id, fetched before the first request needs it."""
        try:
            assert self.codec.confluent is not None
            self.codec.confluent.frame(b"")
        except Exception as exc:
            log.warning("registry_unavailable_at_start", error_class=type(exc).__name__)  # retried on each request

    async def stop(self) -> int:
        """Answer what is in flight, flush; the records left unacknowledged (0 on a clean stop)."""
        started = time.monotonic()
        gateway = self.gateway
        if gateway is not None:
            gateway.stopping = True
        if self._runner is not None:
            await self._runner.cleanup()
        if gateway is None:
            return 0
        left_s = max(self.settings.shutdown_grace_seconds - (time.monotonic() - started), 0.5)
        left = await asyncio.get_running_loop().run_in_executor(None, gateway.publisher.close, left_s)
        log.info("gateway_stopped", unacknowledged=left, seconds=round(time.monotonic() - started, 2))
        return left


async def serve(settings: GatewaySettings) -> int:
    server = GatewayServer(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except (OSError, KafkaException) as exc:  # the port is taken, a bad KAFKA_* setting: say so, no traceback
        log.error("gateway_cannot_start", error=str(exc))
        await server.stop()
        return 1
    await stop.wait()
    log.info("gateway_stopping")  # no new requests; those in flight are answered
    left = await server.stop()
    if left:
        # Each was answered 503 (or not at all): Voucherify sends them again. Nothing was acknowledged.
        log.warning("unacknowledged_at_exit", count=left)
    return 0


def run(settings: GatewaySettings) -> int:
    return asyncio.run(serve(settings))
