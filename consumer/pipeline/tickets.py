"""The checkpoint's bookkeeping: what the sink owes for each slice of a batch.

The sink fills a `Ticket` (one per partition per batch) as it produces, and delivery reports
settle it; the checkpoint reads it to decide what may be committed. Its own module, so that
both can import it and neither imports the other's internals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from confluent_kafka import KafkaError, Message

from consumer.errors import ConsumerError

if TYPE_CHECKING:
    from consumer.telemetry.tallies import Committed


class DeliveryFailed(ConsumerError, RuntimeError):
    """The producer gave up on a record: nothing past it may be committed."""


class DeliveryAudit:
    """Tells the delivery reports that carry a real offset from those librdkafka made up.

    When a retried batch is answered DUPLICATE_SEQUENCE_NUMBER, librdkafka marks its messages
    delivered ("previous send succeeded but was not acknowledged") with base offset -1: the
    batch's reports say offsets -1, 0, 1, ... A broker that advances the producer's sequence
    before it stores the batch answers so for records it never stored (Tansu 0.6 on S3 storage,
    stopped or killed mid-request: meta.json, then watermark.json, then the batch object), so
    such a report proves nothing. Per output partition, reports come in order: a run starting
    at an invalid offset and counting up from 0 is one such batch; any other offset ends it.
    One dict test per report in steady state.
    """

    __slots__ = ("_runs",)

    def __init__(self) -> None:
        self._runs: dict[tuple[str | None, int | None], int] = {}  # partition -> next made-up offset

    def verified(self, msg: Message) -> bool:
        offset = msg.offset()
        runs = self._runs
        if offset is None or offset < 0:
            runs[(msg.topic(), msg.partition())] = 0
            return False
        if runs:
            key = (msg.topic(), msg.partition())
            expected = runs.get(key)
            if expected is not None:
                if offset == expected:
                    runs[key] = expected + 1
                    return False
                del runs[key]
        return True


class Ticket:
    """Deliveries owed for one partition's slice of one batch.

    The checkpoint may commit `next_offset` once the ticket is sealed (all its records
    were handed to the producer) and every delivery report has come back, none of them
    `unverified`.

    `unverified`: a delivery report said "delivered" without a real offset (see `DeliveryAudit`):
    the records may not be stored, so nothing at or past this slice may be committed on its word.
    """

    __slots__ = ("audit", "error", "next_offset", "pending", "sealed", "tally", "unverified")

    def __init__(self, audit: DeliveryAudit | None = None) -> None:
        self.audit = audit
        self.pending = 0
        self.next_offset = -1
        self.sealed = False
        self.error: KafkaError | None = None
        self.unverified = False
        self.tally: Committed | None = None  # the worker's counts for this slice, applied once it is committed

    def ack(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.error = err
        elif self.audit is not None and not self.audit.verified(msg):
            self.unverified = True
        self.pending -= 1

    @property
    def done(self) -> bool:
        return self.sealed and self.pending == 0
