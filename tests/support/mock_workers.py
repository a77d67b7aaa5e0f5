"""Run the real `Worker` in-process against librdkafka's mock cluster, and read back what it did.

The worker runs in a thread so a test can inject faults (brokers down, request errors) while it
works, read its metrics, and look at the group's committed offsets between steps.

Topic creation is replaced for the mock cluster, in `patch_worker_for_mock`: the mock does
not serve CreateTopics (the sink's request would only time out), so the tests create every
topic up front, and the sink's partition lookup that sizes new topics is stubbed with it.
"""

from __future__ import annotations

import gc
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from consumer.config import Settings
from consumer.contract import H_ACTIVITY_ID, STREAMS
from consumer.model import activity_from_record
from consumer.pipeline.codec import AvroCodec, DecodeError
from consumer.pipeline.router import Router
from consumer.runtime.worker import Worker
from consumer.telemetry.kafka_logs import routed
from tests.support.mock_cluster import MockCluster
from tests.support.workers import Record, read_all

Stream = list[tuple[str, str | None, bytes]]
# Client settings that make faults show up (and heal) within seconds rather than minutes.
FAST_CLIENT = {
    "session.timeout.ms": "6000",
    "heartbeat.interval.ms": "500",
    "reconnect.backoff.ms": "50",
    "reconnect.backoff.max.ms": "500",
    "retry.backoff.ms": "50",
    "retry.backoff.max.ms": "500",
    "topic.metadata.refresh.interval.ms": "1000",
}
INPUT_LEADER, OUTPUT_LEADER, COORDINATOR = 2, 1, 3


def patch_worker_for_mock(monkeypatch: pytest.MonkeyPatch) -> None:
    """See the module docstring: skip CreateTopics and the metadata lookup that sizes topics."""
    monkeypatch.setattr("consumer.pipeline.sink.create_topics", lambda *_a, **_k: None)
    monkeypatch.setattr("consumer.pipeline.sink.partition_counts", lambda *_a, **_k: {})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def output_topics(topic: str) -> list[str]:
    return [f"{topic}.{s}" for s in STREAMS] + [f"{topic}.dlq"]


def create_topics(cluster: MockCluster, topic: str, partitions: int, group: str) -> None:
    """The input and every output topic, with leaders on separate brokers.

    Input partitions are led by broker 2, outputs by broker 1, the group and transaction
    coordinators live on broker 3: taking broker 1 down stops deliveries and nothing else.
    """
    for name in [topic, *output_topics(topic)]:
        cluster.create_topic(name, partitions=partitions, replication=3)
        leader = INPUT_LEADER if name == topic else OUTPUT_LEADER
        for p in range(partitions):
            cluster.partition_set_leader(name, p, leader)
    cluster.coordinator_set("group", group, COORDINATOR)


def settings(cluster: MockCluster, topic: str, group: str, **changes: Any) -> Settings:
    kafka = {**FAST_CLIENT, **changes.pop("kafka", {})}
    base = Settings(
        bootstrap_servers=cluster.bootstraps,
        topics=(topic,),
        group_id=group,
        metrics_port=0,
        stop_when_idle=2.0,
        batch_size=25,
        shutdown_grace_seconds=5.0,
        log_format="console",
        kafka=kafka,
    )
    return replace(base, **changes).validate()


@dataclass
class Running:
    """A worker running `run()` in a thread."""

    worker: Worker
    thread: threading.Thread
    result: dict[str, Any] = field(default_factory=dict)

    def join(self, timeout: float) -> int:
        """`run()`'s exit code; re-raises what `run()` raised."""
        outcome = self.outcome(timeout)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def outcome(self, timeout: float) -> int | BaseException:
        """`run()`'s exit code, or the exception it raised."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"worker still running after {timeout}s"
        return self.result["error"] if "error" in self.result else int(self.result["rc"])

    def metric(self, name: str) -> float:
        value = self.worker.registry.get_sample_value(name)
        return 0.0 if value is None else value


def start(s: Settings, prepare: Callable[[Worker], None] | None = None) -> Running:
    """Build a worker, let `prepare` adjust it, and run it in a thread."""
    worker = Worker(s)
    if prepare is not None:
        prepare(worker)
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["rc"] = worker.run()
        except BaseException as exc:  # surfaced by join()
            result["error"] = exc

    thread = threading.Thread(target=target, name=f"worker-{s.group_id}", daemon=True)
    thread.start()
    running = Running(worker, thread, result)
    _started.append(running)
    return running


_started: list[Running] = []


def stop_all(timeout: float = 20.0) -> None:
    """Stop every worker `start` started (a failed test may leave one running) and wait for it."""
    while _started:
        running = _started.pop()
        running.worker.stop()
        running.thread.join(timeout)
    # A worker and its clients form reference cycles (rebalance callbacks are bound methods): free
    # them while the cluster is still up, not in a later test where their shutdown would hang on
    # connections to brokers that no longer exist.
    del running
    gc.collect()


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(interval)


@contextmanager
def group_reader(cluster: MockCluster, group: str) -> Iterator[Consumer]:
    """A consumer in `group` that never subscribes: it only reads the group's committed offsets."""
    consumer = Consumer(
        routed({"bootstrap.servers": cluster.bootstraps, "group.id": group, "enable.auto.commit": False})
    )
    try:
        yield consumer
    finally:
        consumer.close()


def committed(cluster: MockCluster, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001, librdkafka's "none", when none)."""
    with group_reader(cluster, group) as consumer:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    return {tp.partition: tp.offset for tp in tps}


def end_offsets(cluster: MockCluster, topic: str, partitions: int) -> dict[int, int]:
    with group_reader(cluster, "watermarks") as consumer:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}


def expected_records(stream: Iterable[tuple[str, str | None, bytes]], topic: str) -> Counter[tuple[str, str]]:
    """(activity id, output topic) -> records that one processing of the event produces."""
    codec, router = AvroCodec(), Router()
    out: Counter[tuple[str, str]] = Counter()
    for activity_id, _key, value in stream:
        try:
            results = router.route(activity_from_record(codec.decode(value)))
        except DecodeError:
            out[(activity_id, f"{topic}.dlq")] += 1
            continue
        for r in results:
            out[(activity_id, f"{topic}.{r.stream}")] += 1
    return out


def actual_records(records: Iterable[Record]) -> Counter[tuple[str, str]]:
    return Counter((r.headers[H_ACTIVITY_ID].decode(), r.topic) for r in records if H_ACTIVITY_ID in r.headers)


def read_outputs(cluster: MockCluster, topic: str, isolation: str = "read_committed") -> list[Record]:
    return read_all(cluster.bootstraps, output_topics(topic), timeout=30, isolation=isolation)


def missing(expected: Mapping[tuple[str, str], int], actual: Mapping[tuple[str, str], int]) -> dict[Any, Any]:
    """Expected records absent downstream: (id, topic) -> (expected, found)."""
    return {k: (n, actual.get(k, 0)) for k, n in expected.items() if actual.get(k, 0) < n}


def input_records(cluster: MockCluster, topic: str) -> list[Record]:
    return read_all(cluster.bootstraps, [topic], timeout=30)


def undelivered_below(
    inputs: Iterable[Record],
    delivered: Mapping[tuple[str, str], int],
    expected: Mapping[tuple[str, str], int],
    offsets: Mapping[int, int],
) -> list[tuple[int, int, str]]:
    """Input events below `offsets` (committed, per partition) whose results are not all in `delivered`.

    Empty when the commit covers only events whose every result reached its topic.
    """
    wanted: dict[str, list[tuple[tuple[str, str], int]]] = {}
    for key, n in expected.items():
        wanted.setdefault(key[0], []).append((key, n))
    out: list[tuple[int, int, str]] = []
    for r in inputs:
        activity_id = r.headers[H_ACTIVITY_ID].decode()
        if r.offset < offsets.get(r.partition, -1) and any(delivered.get(k, 0) < n for k, n in wanted[activity_id]):
            out.append((r.partition, r.offset, activity_id))
    return sorted(out)


@dataclass
class Txn:
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    delivered: Counter[tuple[str, str]] = field(default_factory=Counter)
    outcome: str = "open"  # "committed" | "aborted"


class TxnSpy:
    """Wraps the worker's transactional producer and records every transaction: the records it
    delivered ((activity id, topic) pairs), the consumed offsets sent with it, how it ended.

    The mock cluster accepts TxnOffsetCommit but never stores the offsets (the group's committed
    offsets stay unset in exactly-once mode) and hands aborted records to read_committed readers;
    this is how a test sees what a transaction committed.
    """

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self.txns: list[Txn] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    def __len__(self) -> int:
        return len(self._producer)

    def begin_transaction(self, *args: Any) -> None:
        self._producer.begin_transaction(*args)
        self.txns.append(Txn())

    def produce(self, topic: str, value: Any = None, key: Any = None, **kwargs: Any) -> None:
        txn = self.txns[-1]
        activity_id = dict(kwargs.get("headers") or [])[H_ACTIVITY_ID]
        activity_id = activity_id.decode() if isinstance(activity_id, bytes) else str(activity_id)
        on_delivery = kwargs.pop("on_delivery", None)

        def report(err: Any, msg: Any) -> None:
            if err is None:
                txn.delivered[(activity_id, topic)] += 1
            if on_delivery is not None:
                on_delivery(err, msg)

        self._producer.produce(topic, value, key, on_delivery=report, **kwargs)

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], *args: Any) -> None:
        self._producer.send_offsets_to_transaction(offsets, *args)
        self.txns[-1].offsets = {(tp.topic, tp.partition): tp.offset for tp in offsets}

    def commit_transaction(self, *args: Any) -> None:
        self._producer.commit_transaction(*args)
        self.txns[-1].outcome = "committed"

    def abort_transaction(self, *args: Any) -> None:
        self._producer.abort_transaction(*args)
        self.txns[-1].outcome = "aborted"

    def committed_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the consumed offset the last committed transaction carried."""
        out: dict[int, int] = {}
        for txn in self.txns:
            if txn.outcome == "committed":
                out.update({p: o for (t, p), o in txn.offsets.items() if t == topic})
        return out

    def history(self, topic: str) -> Iterator[tuple[dict[int, int], Counter[tuple[str, str]]]]:
        """After each committed transaction, in order: the offsets committed so far and the records
        of every transaction committed so far."""
        offsets: dict[int, int] = {}
        records: Counter[tuple[str, str]] = Counter()
        for txn in self.txns:
            if txn.outcome == "committed":
                offsets.update({p: o for (t, p), o in txn.offsets.items() if t == topic})
                records += txn.delivered
                yield dict(offsets), Counter(records)

    def committed_records(self) -> Counter[tuple[str, str]]:
        total: Counter[tuple[str, str]] = Counter()
        for txn in self.txns:
            if txn.outcome == "committed":
                total += txn.delivered
        return total

    def count(self, outcome: str) -> int:
        return sum(1 for t in self.txns if t.outcome == outcome)


def wait_committed(cluster: MockCluster, group: str, topic: str, partitions: int, timeout: float) -> dict[int, int]:
    """Wait until the group has committed up to the end of `topic`; returns those offsets."""
    ends = end_offsets(cluster, topic, partitions)
    wait_until(lambda: committed(cluster, group, topic, partitions) == ends, timeout, f"commits up to {ends}", 0.2)
    return ends
