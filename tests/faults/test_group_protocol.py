"""The worker under both consumer-group protocols, on librdkafka's mock cluster.

librdkafka's mock cluster speaks KIP-848 (`group.protocol=consumer`: ConsumerGroupHeartbeat,
a broker-side assignor, incremental assignment); Tansu never completes such a join. Each
scenario runs two workers in one group while events stream in: B joins mid-stream (the group
moves some of A's partitions to B), then B leaves (they move back). Rebalances must be
incremental (A keeps the partitions it is not asked to give up), each member must commit
what it processed of a partition before giving it up, and nothing may be lost or processed
twice across the two membership changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest
from confluent_kafka import TopicPartition

from consumer.config import ConfigError, Settings
from consumer.kafka_keys import CLASSIC_GROUP_ONLY
from consumer.runtime.worker import Worker
from tests.support.broker import FAST_GROUP_CONFIG, TopicFactory
from tests.support.fault_matrix import MatrixRecorder, Tally, expectations, tally
from tests.support.mock_cluster import ApiKey, MockCluster
from tests.support.mock_workers import (
    COORDINATOR,
    committed,
    create_topics,
    end_offsets,
    patch_worker_for_mock,
    read_outputs,
    settings,
    start,
    stop_all,
    unique,
    wait_until,
)
from tests.support.tansu_faults import Trickle, wait_committed_to_end
from tests.support.tansu_faults import committed as tansu_committed
from tests.support.workers import Record, make_stream, output_topics, read_all

pytestmark = [pytest.mark.faults, pytest.mark.timeout(150)]

PARTITIONS = 4
PROTOCOLS: dict[str, dict[str, str]] = {
    # KIP-848: the broker assigns (and times the session); the client sets none of it.
    "consumer": {"group.protocol": "consumer"},
    # The classic protocol with incremental (cooperative) rebalancing.
    "classic-cooperative": {"group.protocol": "classic", "partition.assignment.strategy": "cooperative-sticky"},
}
CONSUMER_GROUP_HEARTBEAT = 68  # the KIP-848 request's api key (ApiKey names the classic ones)


@dataclass
class Membership:
    """What one worker's rebalance callbacks saw; and, per revocation, where it had consumed the
    revoked partitions to (its position) against the group's committed offsets once it let go."""

    name: str
    where: Where
    events: list[tuple[str, frozenset[int], frozenset[int]]] = field(default_factory=list)  # (kind, parts, kept)
    handovers: list[tuple[dict[int, int], dict[int, int]]] = field(default_factory=list)  # (position, committed)

    def attach(self, worker: Worker) -> None:
        ck = worker.checkpoint
        on_assign, on_revoke = ck.on_assign, ck.on_revoke
        consumer = worker.source.consumer

        # In a rebalance callback the client's assignment is still the one before the change.
        def assigned(partitions: list[TopicPartition]) -> None:
            on_assign(partitions)
            self.events.append(("assign", _parts(partitions), _parts_of(worker) | _parts(partitions)))

        def revoked(partitions: list[TopicPartition]) -> None:
            on_revoke(partitions)
            self.events.append(("revoke", _parts(partitions), _parts_of(worker) - _parts(partitions)))
            # Every batch polled is processed before the next poll (where this callback runs), so
            # the position is the next offset to process: the commit must have reached it.
            # (Read through another client: a closing consumer no longer answers committed().)
            position = {tp.partition: tp.offset for tp in consumer.position(partitions) if tp.offset >= 0}
            done = self.where.committed(worker.settings.group_id, worker.settings.topics[0])
            self.handovers.append((position, {p: done[p] for p in position}))

        ck.on_assign, ck.on_revoke = assigned, revoked  # type: ignore[method-assign]

    def kinds(self) -> list[str]:
        return [kind for kind, parts, _kept in self.events if parts]


def _parts(partitions: list[TopicPartition]) -> frozenset[int]:
    return frozenset(p.partition for p in partitions)


def _parts_of(worker: Worker) -> frozenset[int]:
    """The partitions the worker's consumer owns now (librdkafka's view)."""
    return frozenset(tp.partition for tp in worker.source.consumer.assignment())


def _settings(cluster: MockCluster, topic: str, group: str, protocol: str) -> Settings:
    base = settings(cluster, topic, group, stop_when_idle=None)
    kafka = dict(base.kafka)
    if protocol == "consumer":
        for key in CLASSIC_GROUP_ONLY:
            kafka.pop(key, None)
    return replace(base, kafka={**kafka, **PROTOCOLS[protocol]}).validate()


@dataclass
class Where:
    """The broker a scenario runs on, and how to look at its group and outputs."""

    bootstrap: str
    committed: Callable[[str, str], dict[int, int]]  # (group, topic) -> offset per partition
    wait_done: Callable[[str, str], object]  # until the group has committed the whole input
    outputs: Callable[[str], list[Record]]


def _membership_change(
    where: Where, topic: str, group: str, make: Callable[[], Settings], before_join: Callable[[], None] = lambda: None
) -> tuple[Tally, int]:
    """A alone, B joins mid-stream, B leaves, A finishes: checks incremental hand-overs and
    conservation; returns the tally and how many events B processed."""
    stream = make_stream(900, poison=4, seed=31)
    a, b = Membership("A", where), Membership("B", where)
    first = start(make(), prepare=a.attach)
    trickle = Trickle(where.bootstrap, topic, stream, rate=120)
    wait_until(lambda: first.worker.processed >= 100, 60, "A processing before B joins")
    before_join()
    second = start(make(), prepare=b.attach)
    wait_until(lambda: second.worker.processed >= 60, 60, "B processing after it joined")
    owned_a, owned_b = _parts_of(first.worker), _parts_of(second.worker)
    assert owned_a and owned_b and not owned_a & owned_b, (owned_a, owned_b)
    assert owned_a | owned_b == set(range(PARTITIONS))
    processed_by_b = second.worker.processed

    second.worker.stop()  # B leaves: its partitions go back to A
    assert second.join(30) == 0
    wait_until(lambda: _parts_of(first.worker) == set(range(PARTITIONS)), 60, "A owning every partition again")
    trickle.finish()
    where.wait_done(group, topic)
    first.worker.stop()
    assert first.join(30) == 0

    # Incremental: when B joined, A gave up only B's share and kept consuming the rest; when B
    # left, A was given exactly B's partitions, on top of its own.
    handover = next(e for e in a.events if e[0] == "revoke" and e[1])
    assert handover[1] == owned_b and handover[2] == owned_a, a.events
    regained = [e for e in a.events if e[0] == "assign" and e[1]]
    assert [e[1] for e in regained] == [frozenset(range(PARTITIONS)), owned_b], a.events
    assert regained[-1][2] == set(range(PARTITIONS))
    assert b.kinds() == ["assign", "revoke"], b.events
    # Each member had committed everything it consumed of a partition before giving it up.
    for member in (a, b):
        assert member.handovers and all(pos and pos == done for pos, done in member.handovers), member.handovers
    # Nothing lost, nothing twice: B began where A's revocation commit left off, and A again
    # where B's did (a short commit would re-process events, a long one would skip them).
    t = tally(expectations(stream), where.outputs(topic))
    assert t.lost == 0 and t.misrouted == 0, (t.lost_ids, t.misrouted_ids)
    assert t.forwarded + t.dead_lettered == t.sent == len(stream)
    assert t.duplicated == 0, t
    return t, processed_by_b


def test_kip848_consumer_protocol_member_joins_and_leaves_mid_stream(
    mock_cluster: MockCluster, monkeypatch: pytest.MonkeyPatch, fault_matrix: MatrixRecorder
) -> None:
    patch_worker_for_mock(monkeypatch)
    mock_cluster.group_consumer_timing(session_timeout_ms=6000, heartbeat_interval_ms=500)
    topic, group = unique("activities"), unique("group")
    create_topics(mock_cluster, topic, PARTITIONS, group)
    where = Where(
        mock_cluster.bootstraps,
        lambda g, tp: committed(mock_cluster, g, tp, PARTITIONS),
        lambda g, tp: wait_until(
            lambda: committed(mock_cluster, g, tp, PARTITIONS) == end_offsets(mock_cluster, tp, PARTITIONS),
            60,
            f"commits at the input's end {end_offsets(mock_cluster, tp, PARTITIONS)}, "
            f"not {committed(mock_cluster, g, tp, PARTITIONS)}",
            0.2,
        ),
        lambda tp: read_outputs(mock_cluster, tp, isolation="read_uncommitted"),
    )
    mock_cluster.start_request_tracking()
    try:
        # Commits answered late (as by a busy coordinator): processed work is still uncommitted
        # when a revocation comes, so only the revocation's own commit can hand it over.
        t, by_b = _membership_change(
            where,
            topic,
            group,
            lambda: _settings(mock_cluster, topic, group, "consumer"),
            before_join=lambda: mock_cluster.broker_set_rtt(COORDINATOR, 400),
        )
    finally:
        stop_all()
    assert committed(mock_cluster, group, topic, PARTITIONS) == end_offsets(mock_cluster, topic, PARTITIONS)
    # The protocol asked for is the one spoken: heartbeats of KIP-848, never a classic JoinGroup.
    assert mock_cluster.count_requests(CONSUMER_GROUP_HEARTBEAT) > 0
    assert mock_cluster.count_requests(ApiKey.JOIN_GROUP) == 0
    fault_matrix.record(
        "mock: member joins then leaves mid-stream (group.protocol=consumer, KIP-848)",
        "at-least-once",
        t,
        processed_by_joiner=by_b,
    )


@pytest.mark.integration
def test_classic_cooperative_member_joins_and_leaves_mid_stream(
    kafka_bootstrap: str, topic_factory: TopicFactory, fault_matrix: MatrixRecorder
) -> None:
    """On Tansu: the mock's classic coordinator never completes a cooperative rebalance's second
    round (the joiner waits with nothing assigned and commits fail ILLEGAL_GENERATION, with
    plain clients too), Tansu does."""
    topic, group = topic_factory(PARTITIONS), unique("group")
    where = Where(
        kafka_bootstrap,
        lambda g, tp: tansu_committed(kafka_bootstrap, g, tp, PARTITIONS),
        lambda g, tp: wait_committed_to_end(kafka_bootstrap, g, tp, PARTITIONS, 90),
        lambda tp: read_all(kafka_bootstrap, output_topics(kafka_bootstrap, tp), isolation="read_uncommitted"),
    )

    def make() -> Settings:
        s = Settings(bootstrap_servers=kafka_bootstrap, topics=(topic,), group_id=group, metrics_port=0)
        # Tansu answers a join after about session.timeout.ms / 2; a cooperative hand-over takes two.
        quick = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 300}
        kafka = {**FAST_GROUP_CONFIG, **quick, **PROTOCOLS["classic-cooperative"]}
        return replace(s, batch_size=25, kafka={k: str(v) for k, v in kafka.items()}).validate()

    try:
        t, by_b = _membership_change(where, topic, group, make)
    finally:
        stop_all()
    fault_matrix.record(
        "tansu: member joins then leaves mid-stream (classic, cooperative-sticky)",
        "at-least-once",
        t,
        processed_by_joiner=by_b,
    )


def test_classic_only_group_settings_are_refused_with_the_kip848_protocol() -> None:
    bad = {"group.protocol": "consumer", "session.timeout.ms": "6000", "partition.assignment.strategy": "range"}
    with pytest.raises(ConfigError) as info:
        Settings(topics=("t",), kafka=bad).validate()
    message = str(info.value)
    assert "KAFKA_SESSION_TIMEOUT_MS" in message and "group.consumer.session.timeout.ms" in message
    assert "KAFKA_PARTITION_ASSIGNMENT_STRATEGY" in message and "group.remote.assignor" in message
    Settings(topics=("t",), kafka={**bad, "group.protocol": "classic"}).validate()  # classic keeps them
