"""One page of activities onto the input topic, returned from only once the broker acked all of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from consumer.errors import ConsumerError
from consumer.ingest.records import InputRecord
from consumer.kafka_io import produce_waiting
from consumer.telemetry import logs

WAIT_LOG_EVERY_S = 30.0
STOP_GRACE_S = 20.0  # on SIGTERM, how long a page the broker is not taking is still waited for

log = logs.get(__name__)


class PageNotDelivered(ConsumerError):
    """A page was not fully acknowledged; its position is not saved, so a rerun sends it again."""


class PageSender:
    """Sends pages with a producer made on first use (bad credentials or settings never open one).

    A broker that is away is waited for (librdkafka retries until `message.timeout.ms`); a
    delivery error, or a stop while still waiting, raises PageNotDelivered."""

    def __init__(self, make_producer: Callable[[], Producer], topic: str, stop: threading.Event) -> None:
        self._make = make_producer
        self._producer: Producer | None = None
        self.topic = topic
        self.stop = stop

    def send(self, records: Sequence[InputRecord]) -> None:
        producer = self._producer = self._producer or self._make()
        errors: list[str] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err.str())

        try:
            for r in records:
                produce_waiting(producer, self.topic, r.value, r.key, r.headers, delivered)
                producer.poll(0)
        except KafkaException as exc:
            raise PageNotDelivered(
                f"cannot produce to {self.topic}: {exc.args[0].str() if exc.args else exc}"
            ) from None
        started = last_log = time.monotonic()
        stopped_at: float | None = None
        while (left := producer.flush(1.0)) and not errors:
            now = time.monotonic()
            if self.stop.is_set():
                stopped_at = stopped_at or now
                if now - stopped_at >= STOP_GRACE_S:
                    raise PageNotDelivered(f"stopped with {left} record(s) of a page not acknowledged by the broker")
            if now - last_log >= WAIT_LOG_EVERY_S:
                log.warning("waiting_for_acks", records=left, seconds=round(now - started))
                last_log = now
        if errors:
            raise PageNotDelivered(f"{len(errors)} record(s) of a page not delivered to {self.topic}: {errors[0]}")

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
