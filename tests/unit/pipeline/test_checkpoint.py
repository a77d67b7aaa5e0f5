"""The commit policy on its own: what `AtLeastOnce` and `ExactlyOnce` commit, when, and where
they read again, with fakes for the consumer and the sink (pure bookkeeping, no Kafka).

Delivery, ordering and commits against a real broker are proven in tests/integration and
tests/faults; these pin the decisions down case by case."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumer.pipeline import at_least_once as at_least_once_module
from consumer.pipeline.at_least_once import AtLeastOnce
from consumer.pipeline.checkpoint import Checkpoint, Unguarded
from consumer.pipeline.exactly_once import ExactlyOnce
from consumer.pipeline.sink import Sink
from consumer.pipeline.tickets import DeliveryAudit, DeliveryFailed, Ticket
from consumer.telemetry.metrics import PipelineMetrics, new_registry

T = "in"


class Report:
    """What a delivery report's message says: where the record was stored."""

    def __init__(self, offset: int | None, partition: int = 0, topic: str = "in.lifecycle") -> None:
        self._offset, self._partition, self._topic = offset, partition, topic

    def offset(self) -> int | None:
        return self._offset

    def partition(self) -> int:
        return self._partition

    def topic(self) -> str:
        return self._topic


class FakeConsumer:
    def __init__(self, committed: dict[tuple[str, int], int] | None = None) -> None:
        self.commits: list[tuple[list[tuple[str, int, int]], bool]] = []
        self.seeks: list[tuple[str, int, int]] = []
        self.fail_next_commit: KafkaError | None = None
        self.stored = dict(committed or {})

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(([(tp.topic, tp.partition, tp.offset) for tp in offsets], asynchronous))
        if self.fail_next_commit is not None:
            err, self.fail_next_commit = self.fail_next_commit, None
            raise KafkaException(err)

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self.seeks.append((topic, partition, offset))

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [
            TopicPartition(p.topic, p.partition, self.stored.get((p.topic, p.partition), -1001)) for p in partitions
        ]

    def group_metadata(self) -> object:
        return object()


class FakeTransactions:
    """The sink's transactional calls, recorded; `fail` makes one of them raise once."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: dict[str, KafkaError] = {}

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise KafkaException(self.fail.pop(name))

    def init_transactions(self, _t: float) -> None:
        self._call("init")

    def begin_transaction(self) -> None:
        self._call("begin")

    def send_offsets(self, offsets: list[TopicPartition], _meta: object, _t: float) -> None:
        self._call("send_offsets")

    def commit_transaction(self, _t: float) -> None:
        self._call("commit")

    def abort_transaction(self, _t: float) -> None:
        self._call("abort")


class FakeSink(FakeTransactions):
    """The sink's side the checkpoint reads: the audit, the queue, flushing, transactions."""

    def __init__(self) -> None:
        super().__init__()
        self.audit = DeliveryAudit()
        self.fatal: KafkaError | None = None
        self.on_flush: list[Any] = []  # delivery reports that arrive while flushing

    def queue_length(self) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        for ack in self.on_flush:
            ack()
        self.on_flush = []
        return 0

    def drain(self, timeout: float) -> int:
        return self.flush(timeout)


def at_least_once(batch_size: int = 10, max_batches: int = 2) -> tuple[AtLeastOnce, FakeConsumer, FakeSink]:
    sink = FakeSink()
    cp = AtLeastOnce(
        cast(Sink, sink),
        PipelineMetrics(new_registry()),
        1.0,
        guard=Unguarded(),
        batch_size=batch_size,
        max_batches=max_batches,
    )
    consumer = FakeConsumer()
    cp.attach(consumer)
    return cp, consumer, sink


def batch(cp: Any, partition: int, first: int, last: int, results: int = 1, sink: FakeSink | None = None) -> Ticket:
    """Events first..last of one partition as one batch, each with `results` records owed (with
    `sink`: acknowledged, with real offsets, while the checkpoint drains it)."""
    cp.begin_batch()
    ticket: Ticket | None = None
    for offset in range(first, last + 1):
        ticket = cp.ticket(T, partition, offset)
        ticket.pending += results
    assert ticket is not None
    if sink is not None:
        sink.on_flush.append(lambda t=ticket: ack_all(t))
    cp.end_batch()
    return ticket


def ack_all(ticket: Ticket, offset: int = 100) -> None:
    while ticket.pending:
        ticket.ack(None, cast(Any, Report(offset)))
        offset += 1


def async_commits(consumer: FakeConsumer) -> list[list[tuple[str, int, int]]]:
    return [offsets for offsets, asynchronous in consumer.commits if asynchronous]


def test_acks_out_of_order_commit_nothing_until_the_earlier_slice_is_delivered() -> None:
    cp, consumer, _ = at_least_once()
    first, second = batch(cp, 0, 0, 4), batch(cp, 0, 5, 9)
    ack_all(second)
    cp.poll()
    assert consumer.commits == []  # offsets 5..9 delivered, 0..4 not: nothing may be committed
    ack_all(first)
    cp.poll()
    assert async_commits(consumer) == [[(T, 0, 10)]]  # one commit carries both slices


def test_a_partition_read_too_far_past_its_commit_is_blocked_and_its_polls_shrink() -> None:
    """The re-delivery bound: max_batches x batch_size offsets past the last confirmed commit."""
    cp, _, _ = at_least_once(batch_size=10, max_batches=2)
    batch(cp, 0, 0, 9)
    assert cp.blocked() == set() and cp.poll_size(set()) == 10
    batch(cp, 0, 10, 14)
    assert cp.uncommitted() == {(T, 0): 15}
    assert cp.blocked() == {(T, 0)}  # past the pause mark (bound - batch_size)
    assert cp.poll_size(set()) == 5  # a poll may never carry it past the bound of 20
    assert cp.poll_size({(T, 0)}) == 10  # paused partitions do not count


def test_the_bound_is_released_only_by_a_confirmed_commit() -> None:
    cp, consumer, _ = at_least_once(batch_size=10, max_batches=2)
    ticket = batch(cp, 0, 0, 14)
    ack_all(ticket)
    cp.poll()
    assert async_commits(consumer) == [[(T, 0, 15)]]
    assert cp.blocked() == {(T, 0)}  # sent, not yet confirmed: a crash would re-deliver it all
    cp.on_commit(None, [TopicPartition(T, 0, 15)])
    assert cp.blocked() == set() and cp.uncommitted() == {(T, 0): 0}


def test_revoke_with_acks_still_owed_flushes_and_commits_what_was_delivered_then_forgets() -> None:
    cp, consumer, sink = at_least_once()
    delivered, owed = batch(cp, 0, 0, 4), batch(cp, 0, 5, 9)
    other = batch(cp, 1, 0, 2)
    ack_all(delivered)
    sink.on_flush = [lambda: owed.ack(None, cast(Any, Report(200)))]  # one of five comes in the flush
    cp.on_revoke([TopicPartition(T, 0)])
    # A synchronous commit of the revoked partition only, up to what was delivered.
    assert consumer.commits == [([(T, 0, 5)], False)]
    assert cp.uncommitted() == {(T, 1): 3}  # partition 0 is forgotten; 1 is still ours
    ack_all(other)
    cp.poll()
    assert async_commits(consumer) == [[(T, 1, 3)]]


def test_a_failed_commit_is_counted_and_sent_again() -> None:
    cp, consumer, _ = at_least_once()
    ack_all(batch(cp, 0, 0, 9))
    cp.poll()
    cp.on_commit(KafkaError(KafkaError.REQUEST_TIMED_OUT), [TopicPartition(T, 0, 10)])
    assert cp.metrics.commit_failures._value.get() == 1  # type: ignore[attr-defined]
    cp.poll()
    assert async_commits(consumer) == [[(T, 0, 10)], [(T, 0, 10)]]


def test_a_commit_whose_answer_never_comes_is_sent_again_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    cp, consumer, _ = at_least_once()
    ack_all(batch(cp, 0, 0, 9))
    clock = [1000.0]
    monkeypatch.setattr(at_least_once_module.time, "monotonic", lambda: clock[0])
    cp.poll()
    cp.poll()  # the answer is awaited: one commit in flight at a time
    assert async_commits(consumer) == [[(T, 0, 10)]]
    clock[0] += at_least_once_module.COMMIT_ANSWER_TIMEOUT_S + 1
    cp.poll()  # nothing newer was delivered; the lost commit itself goes again
    assert async_commits(consumer) == [[(T, 0, 10)], [(T, 0, 10)]]


def test_a_lost_assignment_commits_nothing_and_starts_afresh() -> None:
    cp, consumer, _ = at_least_once()
    ack_all(batch(cp, 0, 0, 9))
    cp.on_lost([TopicPartition(T, 0)])
    cp.poll()
    assert consumer.commits == []  # another member owns it: committing would overwrite its progress
    ack_all(batch(cp, 0, 40, 44))  # given back later, from wherever the group committed
    cp.poll()
    assert async_commits(consumer) == [[(T, 0, 45)]]
    assert cp.uncommitted() == {(T, 0): 5}


def test_a_failed_delivery_stops_every_commit_at_it() -> None:
    cp, consumer, _ = at_least_once()
    ticket = batch(cp, 0, 0, 4)
    ticket.ack(KafkaError(KafkaError._MSG_TIMED_OUT), cast(Any, Report(None)))
    ack_all(ticket)
    with pytest.raises(DeliveryFailed):
        cp.poll()
    cp.close()
    assert consumer.commits == []


def test_an_unverified_ack_reads_the_partition_again_from_it_and_tells_the_gate() -> None:
    """A 'delivered' report without a real offset (librdkafka after DUPLICATE_SEQUENCE_NUMBER)."""
    cp, consumer, _ = at_least_once()
    rewound: list[tuple[tuple[str, int], int]] = []
    cp.on_rewound = lambda key, offset: rewound.append((key, offset))
    good, suspect, later = batch(cp, 0, 0, 4), batch(cp, 0, 5, 9), batch(cp, 0, 10, 14)
    ack_all(good, offset=100)
    suspect.ack(None, cast(Any, Report(-1)))  # made up: -1, 0, 1, ...
    for n in range(suspect.pending):
        suspect.ack(None, cast(Any, Report(n)))
    ack_all(later, offset=300)
    cp.poll()
    assert consumer.seeks == [(T, 0, 5)] and rewound == [((T, 0), 5)]
    assert async_commits(consumer) == [[(T, 0, 5)]]  # never past the unverified slice
    assert cp.uncommitted() == {(T, 0): 5}  # read again from 5


def exactly_once(committed: dict[tuple[str, int], int]) -> tuple[ExactlyOnce, FakeConsumer, FakeSink]:
    sink = FakeSink()
    cp = ExactlyOnce(cast(Sink, sink), PipelineMetrics(new_registry()), 1.0, guard=Unguarded())
    consumer = FakeConsumer(committed)
    cp.attach(consumer)
    return cp, consumer, sink


def test_exactly_once_commits_a_batch_as_one_transaction_and_counts_it() -> None:
    cp, consumer, sink = exactly_once({})
    counted: list[Ticket] = []
    cp.on_committed = counted.append
    ticket = batch(cp, 0, 0, 4, sink=sink)
    assert sink.calls == ["init", "begin", "send_offsets", "commit"]
    assert counted == [ticket] and consumer.seeks == []


def test_exactly_once_abort_rewinds_to_the_committed_offsets_and_counts_nothing() -> None:
    cp, consumer, sink = exactly_once({(T, 0): 40})
    counted: list[Ticket] = []
    rewound: list[tuple[tuple[str, int], int]] = []
    cp.on_committed = counted.append
    cp.on_rewound = lambda key, offset: rewound.append((key, offset))
    sink.fail["commit"] = KafkaError(KafkaError._TIMED_OUT, "commit", txn_requires_abort=True)
    batch(cp, 0, 40, 49, sink=sink)
    assert sink.calls[-2:] == ["commit", "abort"]
    assert consumer.seeks == [(T, 0, 40)] and rewound == [((T, 0), 40)]
    assert counted == []  # an aborted batch is read again: counting it now would count it twice


def test_exactly_once_aborts_a_batch_with_an_unverified_ack_instead_of_committing_it() -> None:
    cp, consumer, sink = exactly_once({})
    cp.begin_batch()
    ticket = cp.ticket(T, 0, 0)
    ticket.pending = 1
    ticket.ack(None, cast(Any, Report(-1)))
    cp.end_batch()
    assert "commit" not in sink.calls and sink.calls[-1] == "abort"
    assert consumer.seeks == [(T, 0, -2)]  # nothing committed yet: from the beginning


def test_exactly_once_aborts_a_batch_whose_reports_are_not_all_in_after_the_drain() -> None:
    """The drain before the commit has a deadline (a broker restarting can outlast it). A report
    still owed then may come back during commit_transaction()'s own flush, made up (DUPSEQ after
    the restart: offset -1, stored nowhere), too late for the audit: the transaction would commit
    the consumed offsets with the results missing. Only a batch whose every report is in and real
    is committed; this one is aborted and read again."""
    cp, consumer, sink = exactly_once({(T, 0): 40})
    cp.begin_batch()
    ticket = cp.ticket(T, 0, 40)
    ticket.pending = 1
    sink.drain = lambda _timeout: 1  # type: ignore[method-assign]  # the deadline passed, 1 owed
    commit = sink.commit_transaction

    def commit_flushing(timeout: float) -> None:  # librdkafka flushes first, serving the reports
        ticket.ack(None, cast(Any, Report(-1)))
        commit(timeout)

    sink.commit_transaction = commit_flushing  # type: ignore[method-assign]
    cp.end_batch()
    assert "send_offsets" not in sink.calls and "commit" not in sink.calls
    assert sink.calls[-1] == "abort"
    assert consumer.seeks == [(T, 0, 40)]  # read again from the last committed offset


def test_a_fatal_transactional_error_ends_the_worker() -> None:
    cp, _, sink = exactly_once({})
    sink.fail["send_offsets"] = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    with pytest.raises(DeliveryFailed):
        batch(cp, 0, 0, 0, sink=sink)
    assert "abort" not in sink.calls


def test_a_mode_that_forgets_a_hook_cannot_be_built() -> None:
    """The checkpoint is abstract: a guarantee missing one hook fails at construction, not silently."""
    hooks = {name: lambda self, *_a: None for name in Checkpoint.__abstractmethods__ if name != "on_revoke"}
    forgetful = type("Forgetful", (Checkpoint,), hooks)
    with pytest.raises(TypeError, match="on_revoke"):
        forgetful(FakeSink(), PipelineMetrics(new_registry()), 1.0, guard=Unguarded())


def test_only_the_sink_touches_a_producer_in_the_worker() -> None:
    root = Path(__file__).resolve().parents[3] / "consumer"
    assert (root / "pipeline" / "sink.py").is_file(), root  # the scan reads the package, not nothing
    touching = [
        f"{path.relative_to(root)}:{node.lineno}"
        for folder in ("pipeline", "runtime")
        for path in sorted((root / folder).rglob("*.py"))
        if path.name != "sink.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "producer"
    ]
    assert touching == [], touching
