"""Records to Kafka, answered only once the broker acknowledged them.

One idempotent `acks=all` producer. Its delivery reports are served by a poller thread and
resolve asyncio futures on the event loop (`call_soon_threadsafe`). A full local queue, a
broker known to be away, or an ack that does not come in time each give an outcome the
gateway turns into a 503: nothing is acknowledged that the broker does not hold.

A delivery stays pending until its report comes, even after its request gave up waiting:
a re-send of the same event joins it instead of producing a second copy, and a late ack
still enters the acknowledged window. A "delivered" report without a real offset (librdkafka's
answer to DUPLICATE_SEQUENCE_NUMBER, see pipeline/tickets.DeliveryAudit) is not taken as stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
import time
from collections.abc import Hashable, Mapping
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from consumer.ingest.metrics import GatewayMetrics
from consumer.ingest.records import InputRecord
from consumer.ingest.window import AcknowledgedWindow
from consumer.pipeline.clients import client_config
from consumer.pipeline.tickets import DeliveryAudit
from consumer.telemetry.logs import get as get_logger

log = get_logger("gateway.publisher")

POLL_S: Final = 0.05
PROBE_S: Final = 0.5  # how often a broker believed away is asked for metadata
_AWAY: Final = (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT)


class Outcome(enum.Enum):
    ACKED = "accepted"
    DUPLICATE = "duplicate"
    UNAVAILABLE = "unavailable"  # broker away, queue full, or the delivery failed
    TIMEOUT = "timeout"


def producer_config(bootstrap_servers: str, kafka: Mapping[str, str]) -> dict[str, Any]:
    """The KAFKA_* pass-through (producer keys), then what the gateway's guarantee needs."""
    return client_config(
        "producer",
        bootstrap_servers,
        kafka,
        defaults={
            "linger.ms": 2,
            "reconnect.backoff.max.ms": 1000,  # back soon after an outage: Voucherify is retrying
        },
        own={"enable.idempotence": True, "acks": "all"},
    )


class BrokerState:
    """Whether the broker is reachable: down on an all-brokers-down report, up again on an ack
    or a metadata answer. Plain attributes, written by the client threads, read by probes."""

    def __init__(self) -> None:
        self.up = False  # until the first metadata answer
        self.fatal: str | None = None
        self.wake = threading.Event()

    def went_away(self) -> None:
        self.up = False
        self.wake.set()

    def suspect(self) -> None:
        self.wake.set()  # one broker's connection failed: ask the cluster


class Publisher:
    def __init__(
        self,
        config: Mapping[str, Any],
        metrics: GatewayMetrics,
        *,
        window: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.metrics = metrics
        self.broker = BrokerState()
        self.acknowledged = AcknowledgedWindow(window)
        self._loop = loop
        self._pending: dict[Hashable, asyncio.Future[bool]] = {}
        self._stop = threading.Event()
        self._audit = DeliveryAudit()  # only the thread serving delivery reports touches it
        self.producer = Producer({**config, "error_cb": self._on_error})
        metrics.watch_queue(lambda: len(self.producer))
        self._threads = [
            threading.Thread(target=self._poll_loop, name="gateway-poll", daemon=True),
            threading.Thread(target=self._probe_loop, name="gateway-probe", daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.broker.wake.set()

    # -- the request path (event loop) ----------------------------------------------------------
    async def publish(self, topic: str, record: InputRecord, key: Hashable, timeout_s: float) -> Outcome:
        if key in self.acknowledged:
            return Outcome.DUPLICATE
        future = self._pending.get(key)
        joined = future is not None
        if future is None:
            if not self.broker.up or self.broker.fatal:
                return Outcome.UNAVAILABLE
            future = self._produce(topic, record, key)
            if future is None:
                return Outcome.UNAVAILABLE
        try:
            stored = await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            return Outcome.TIMEOUT
        if not stored:
            return Outcome.UNAVAILABLE
        return Outcome.DUPLICATE if joined else Outcome.ACKED

    def _produce(self, topic: str, record: InputRecord, key: Hashable) -> asyncio.Future[bool] | None:
        future: asyncio.Future[bool] = self._loop.create_future()
        started = time.monotonic()

        def delivered(err: KafkaError | None, msg: Message) -> None:  # on the thread serving reports
            # A "delivered" without a real offset (after DUPLICATE_SEQUENCE_NUMBER) proves nothing.
            verified = err is None and self._audit.verified(msg)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                self._loop.call_soon_threadsafe(self._settle, key, future, err, verified, started)

        try:
            headers: list[tuple[str, str | bytes | None]] = list(record.headers)
            self.producer.produce(topic, record.value, record.key, headers=headers, on_delivery=delivered)
        except BufferError:  # the local queue is full: answer now, never block the loop
            log.warning("producer_queue_full", queued=len(self.producer))
            return None
        except KafkaException as exc:
            log.error("produce_refused", error=str(exc.args[0]))
            return None
        self._pending[key] = future
        return future

    def _settle(
        self, key: Hashable, future: asyncio.Future[bool], err: KafkaError | None, verified: bool, started: float
    ) -> None:
        self._pending.pop(key, None)
        if verified:
            self.metrics.ack_seconds.observe(time.monotonic() - started)
            self.acknowledged.add(key)
            self.broker.up = True
        elif err is None:  # maybe stored, maybe not: answered 503, so Voucherify sends it again
            log.warning("delivery_unverified")  # no offset: not counted as stored
        else:
            log.warning("delivery_failed", error=err.str(), code=err.name())
        if not future.done():
            future.set_result(verified)

    # -- client threads ------------------------------------------------------------------------
    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self.broker.fatal = err.str()
            log.error("producer_fatal", error=err.str())
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            if self.broker.up:
                log.warning("broker_unreachable", error=err.str())
            self.broker.went_away()
        elif err.code() in _AWAY:
            self.broker.suspect()
        else:
            log.warning("producer_error", error=err.str(), code=err.name())

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(POLL_S)

    def _probe_loop(self) -> None:
        while not self._stop.is_set():
            if not self.broker.wake.wait(PROBE_S) and self.broker.up:
                continue
            self.broker.wake.clear()
            if self._stop.is_set():
                return
            try:
                self.producer.list_topics(timeout=PROBE_S * 2)
            except KafkaException:
                if self.broker.up:
                    log.warning("broker_unreachable", error="metadata request failed")
                self.broker.up = False
                continue
            if not self.broker.up:
                log.info("broker_reachable")
            self.broker.up = True

    # -- shutdown ------------------------------------------------------------------------------
    def close(self, timeout_s: float) -> int:
        """Flush (bounded), stop the threads; the records still queued (0 when all were acked)."""
        self._stop.set()  # the poller first: the reports are then served by flush alone, in order
        self.broker.wake.set()
        for t in self._threads:
            t.join(timeout=2.0)
        return int(self.producer.flush(max(timeout_s, 0.0)))
