"""The checkpoint's bookkeeping: what the sink owes for each slice of a batch.

The sink fills a `Ticket` (one per partition per batch) as it produces, and delivery reports
settle it; the checkpoint reads it to decide what may be committed. Its own module, so that
both can import it and neither imports the other's internals.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, Message


class DeliveryFailed(RuntimeError):
    """The producer gave up on a record: nothing past it may be committed."""


class Ticket:
    """Deliveries owed for one partition's slice of one batch.

    The checkpoint may commit `next_offset` once the ticket is sealed (all its records
    were handed to the producer) and every delivery report has come back.
    """

    __slots__ = ("error", "next_offset", "pending", "sealed", "tally")

    def __init__(self) -> None:
        self.pending = 0
        self.next_offset = -1
        self.sealed = False
        self.error: KafkaError | None = None
        self.tally: Any = None  # the worker's counts for this slice, applied once it is committed

    def ack(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.error = err
        self.pending -= 1

    @property
    def done(self) -> bool:
        return self.sealed and self.pending == 0
