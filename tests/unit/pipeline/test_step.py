"""The per-event step: every exit of the per-event path is a value, checked without Kafka.

Real messages (confluent_kafka.Message), the real codec and router; a registry client that
refuses connections stands in for an outage.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message
from confluent_kafka.schema_registry import SchemaRegistryClient

from consumer.config import Settings
from consumer.devtools.corpus import EXAMPLES
from consumer.model import Activity, Result, activity_from_record
from consumer.pipeline.codec import AvroCodec
from consumer.pipeline.retrying import RetryingRouter
from consumer.pipeline.router import Router
from consumer.pipeline.step import DeadLetter, Forward, Hold, Skip, step
from consumer.telemetry.metrics import PipelineMetrics, new_registry

ACTIVITY = json.loads((EXAMPLES / "customer.segment.entered.json").read_text())
CODEC = AvroCodec()
GOOD = CODEC.encode_json(ACTIVITY)
TOPIC = "ca.events"


def message(value: bytes | None, *, topic: str = TOPIC, partition: int = 2, offset: int = 41) -> Message:
    return Message(topic=topic, partition=partition, offset=offset, value=value, key=b"k")


def retrying(router: Any, max_retries: int = 2) -> RetryingRouter:
    settings = Settings(max_retries=max_retries, retry_backoff_ms=1, retry_backoff_max_ms=1)
    return RetryingRouter(router, settings, PipelineMetrics(new_registry()), sleep=lambda _s: None)


class Calls:
    """A handler that raises `fails` times, then returns one result."""

    def __init__(self, fails: int) -> None:
        self.fails, self.calls = fails, 0

    def __call__(self, activity: Activity) -> list[Result]:
        self.calls += 1
        if self.calls <= self.fails:
            raise RuntimeError(f"boom {self.calls}")
        return Router().route(activity)


def test_a_good_event_is_forwarded_with_the_routers_results() -> None:
    outcome = step(message(GOOD), CODEC, retrying(Router()))
    expected = Router().route(activity_from_record(CODEC.decode(GOOD)))
    assert type(outcome) is Forward
    assert outcome.activity.id == ACTIVITY["id"] and outcome.activity.type == ACTIVITY["type"]
    assert outcome.results == expected and expected  # the segment handler has results to forward


@pytest.mark.parametrize(
    ("value", "reason", "framing"),
    [
        (None, "empty", "unknown"),  # a tombstone: dead-lettered like any empty value
        (b"", "empty", "unknown"),
        (b"\x7fnot avro", "bad_magic", "unknown"),
        (b"\xc3", "truncated", "single-object"),
        (GOOD + b"\x01\x02", "trailing_bytes", "single-object"),
        (b"\xc3\x01" + b"\x11" * 8 + GOOD[10:], "unknown_fingerprint", "single-object"),
    ],
)
def test_bytes_that_do_not_decode_are_dead_lettered_with_their_reason(
    value: bytes | None, reason: str, framing: str
) -> None:
    outcome = step(message(value), CODEC, retrying(Router()))
    assert type(outcome) is DeadLetter
    assert (outcome.error_class, outcome.reason_code, outcome.framing, outcome.activity) == (
        "DecodeError",
        reason,
        framing,
        None,
    )
    assert outcome.reason.startswith(f"{reason}: ")


def test_a_handler_that_fails_every_try_dead_letters_the_event_after_the_retries() -> None:
    handler = Calls(fails=100)
    outcome = step(message(GOOD), CODEC, retrying(Router({}, fallback=handler), max_retries=2))
    assert type(outcome) is DeadLetter
    assert (outcome.error_class, outcome.reason_code, outcome.reason) == (
        "HandlerError",
        "handler_error",
        "RuntimeError: boom 3",
    )
    assert outcome.activity is not None and outcome.activity.id == ACTIVITY["id"]
    assert outcome.framing is None
    assert handler.calls == 3  # the first try and two retries


def test_a_handler_that_recovers_within_its_retries_forwards() -> None:
    handler = Calls(fails=2)
    outcome = step(message(GOOD), CODEC, retrying(Router({}, fallback=handler), max_retries=2))
    assert type(outcome) is Forward and outcome.results
    assert handler.calls == 3


class _Down:
    """A registry client whose every call fails as a refused connection does."""

    def __getattr__(self, name: str) -> Any:
        def refused(*_a: Any, **_k: Any) -> Any:
            raise ConnectionError("connection refused")

        return refused


def test_a_registry_outage_holds_the_partition_at_the_event() -> None:
    registry = SchemaRegistryClient.new_client({"url": f"mock://step-{uuid.uuid4()}"})
    confluent = AvroCodec(framing="confluent", registry=registry).encode_json(ACTIVITY)
    outcome = step(message(confluent, partition=5, offset=977), AvroCodec(registry=_Down()), retrying(Router()))
    assert type(outcome) is Hold
    assert (outcome.partition, outcome.offset) == ((TOPIC, 5), 977)
    assert "connection refused" in outcome.reason


def test_our_own_output_is_skipped_undecoded_and_read_past() -> None:
    outcome = step(
        message(b"\x7fnever decoded", topic="ca.events.dlq"), CODEC, retrying(Router()), lambda t: t.endswith(".dlq")
    )
    assert outcome == Skip("own_output")
    assert isinstance(outcome, Skip) and outcome.read_past
    # Another topic under the same pattern is an input like any other.
    other = step(message(GOOD, topic="ca.more"), CODEC, retrying(Router()), lambda t: t.endswith(".dlq"))
    assert type(other) is Forward


def test_without_a_pattern_nothing_is_taken_for_our_own_output() -> None:
    assert type(step(message(GOOD, topic="ca.events.dlq"), CODEC, retrying(Router()))) is Forward


@pytest.mark.parametrize(
    ("code", "reason"),
    [(KafkaError._PARTITION_EOF, "end_of_partition"), (KafkaError._TRANSPORT, "consume_error")],
)
def test_consume_errors_are_skipped_with_no_offset_to_commit(code: int, reason: str) -> None:
    err = Message(topic=TOPIC, partition=0, offset=-1001, error=KafkaError(code, "broker went away"))
    outcome = step(err, CODEC, retrying(Router({}, fallback=Calls(fails=100))))
    assert type(outcome) is Skip
    assert outcome.reason == reason and not outcome.read_past
    if reason == "consume_error":
        assert "broker went away" in outcome.detail
