"""One event's step, as a value: decode it, route it, and say what should become of it.

The step produces nothing, commits nothing and counts nothing. The worker hands its outcome
to the sink (forward, dead-letter), the checkpoint (how far the partition may be committed),
the gate (a hold) and the tallies. So every exit of the per-event path is unit-tested without
Kafka.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple, Protocol, cast

from confluent_kafka import KafkaError, Message

from consumer.model import TP, Activity, Result, activity_from_record
from consumer.pipeline.codec import DecodeError, RegistryUnavailable
from consumer.pipeline.retrying import HandlerFailed, Routes

SkipReason = Literal["end_of_partition", "consume_error", "own_output"]


class Decodes(Protocol):
    def decode(self, payload: bytes) -> dict[str, Any]: ...


# NamedTuples, for the reason consumer.model gives (one per event).
class Forward(NamedTuple):
    """Produce these results (an empty list still counts the event as processed)."""

    activity: Activity
    results: list[Result]


class DeadLetter(NamedTuple):
    """Bad input: its original bytes go to the dead-letter topic with headers that say why."""

    error_class: str  # DecodeError | HandlerError
    reason_code: str  # bounded: a DecodeReason, or handler_error
    reason: str  # what was wrong, for the dlq-reason header
    activity: Activity | None  # None when the bytes could not be decoded
    framing: str | None = None  # a decode error's framing, for its metric


class Hold(NamedTuple):
    """The Schema Registry could not serve this event (not its fault): read the partition again
    from `offset` after a backoff; nothing at or past it is committed meanwhile."""

    partition: TP
    offset: int
    reason: str


class Skip(NamedTuple):
    """Nothing to produce: the end of a partition, a consume error, or a record of our own."""

    reason: SkipReason
    detail: str = ""

    @property
    def read_past(self) -> bool:
        """Committed past like any event: our own output is a real record; an error has no offset."""
        return self.reason == "own_output"


Outcome = Forward | DeadLetter | Hold | Skip


def step(
    msg: Message,
    codec: Decodes,
    router: Routes,
    own_output: Callable[[str], bool] | None = None,
) -> Outcome:
    """The outcome of one polled message. `router` raises `HandlerFailed` once retries are spent
    (`RetryingRouter`); `own_output` is given when a pattern may match our own topics."""
    err = msg.error()
    if err is not None:
        if err.code() == KafkaError._PARTITION_EOF:
            return Skip("end_of_partition")
        return Skip("consume_error", str(err))
    if own_output is not None and own_output(cast(str, msg.topic())):
        return Skip("own_output")  # never loop on what we wrote
    try:
        activity = activity_from_record(codec.decode(msg.value() or b""))
    except RegistryUnavailable as exc:
        return Hold((cast(str, msg.topic()), cast(int, msg.partition())), cast(int, msg.offset()), exc.detail)
    except DecodeError as exc:
        return DeadLetter("DecodeError", exc.reason, str(exc), None, exc.framing)
    try:
        return Forward(activity, router.route(activity))
    except HandlerFailed as exc:
        return DeadLetter("HandlerError", "handler_error", str(exc), activity)
