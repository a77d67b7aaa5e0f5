"""`DeliveryAudit` tells delivery reports with a real offset from those librdkafka made up.

librdkafka marks a batch answered DUPLICATE_SEQUENCE_NUMBER delivered with base offset -1, so its
reports count -1 (None from confluent-kafka), 0, 1, ... (tests/faults/test_unverified_delivery.py
shows it end to end). A stand-in report carries only what the audit reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consumer.pipeline.tickets import DeliveryAudit, Ticket


@dataclass
class Report:
    _topic: str
    _partition: int
    _offset: int | None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int | None:
        return self._offset


def _verdicts(audit: DeliveryAudit, reports: list[tuple[str, int, int | None]]) -> list[bool]:
    msg: Any
    out = []
    for topic, partition, offset in reports:
        msg = Report(topic, partition, offset)
        out.append(audit.verified(msg))
    return out


def test_real_offsets_are_verified() -> None:
    assert _verdicts(DeliveryAudit(), [("t", 0, 100), ("t", 0, 101), ("t", 1, 7)]) == [True, True, True]


def test_a_made_up_batch_is_unverified_up_to_its_last_record_then_real_offsets_are_again() -> None:
    reports = [("t", 0, 40), ("t", 0, None), ("t", 0, 0), ("t", 0, 1), ("t", 0, 2), ("t", 0, 60), ("t", 0, 61)]
    assert _verdicts(DeliveryAudit(), reports) == [True, False, False, False, False, True, True]


def test_runs_are_per_partition_and_a_second_made_up_batch_starts_a_new_run() -> None:
    reports = [
        ("t", 0, -1),
        ("t", 1, 5),  # another partition, real: unaffected
        ("t", 0, 0),
        ("t", 0, None),  # the next made-up batch of partition 0
        ("t", 0, 0),
        ("u", 0, 0),  # same partition number, other topic: real
    ]
    assert _verdicts(DeliveryAudit(), reports) == [False, True, False, False, False, True]


def test_a_ticket_with_one_made_up_report_is_unverified_and_still_settles() -> None:
    audit = DeliveryAudit()
    ticket = Ticket(audit)
    ticket.pending = 2
    ticket.sealed = True
    first: Any = Report("t", 0, 9)
    second: Any = Report("t", 0, None)
    ticket.ack(None, first)
    assert not ticket.unverified
    ticket.ack(None, second)
    assert ticket.done and ticket.unverified and ticket.error is None
