"""The partition gate: which partitions are fetched, decided by a plain policy (clock passed in)
and applied to a consumer through its pause/resume/seek, here a recording fake."""

from __future__ import annotations

from consumer.config import Settings
from consumer.pipeline.gate import Gate, GatePolicy
from consumer.pipeline.step import Hold
from consumer.telemetry.metrics import PipelineMetrics, new_registry
from consumer.telemetry.probes import Health

A, B, C = ("t", 0), ("t", 1), ("t", 2)
SETTINGS = Settings(retry_backoff_ms=100, retry_backoff_max_ms=400)


def policy() -> GatePolicy:
    return GatePolicy(SETTINGS.retry_delay_ms)


def test_backpressure_pauses_blocked_partitions_and_resumes_them_when_commits_catch_up() -> None:
    gate = policy()
    moves = gate.plan({A, B}, now=0)
    assert sorted(moves.pause) == [A, B] and moves.resume == [] and not moves.retry_registry
    assert gate.paused == {A: "backpressure", B: "backpressure"}
    assert gate.plan({A, B}, now=1).pause == []  # already paused: nothing to do again
    moves = gate.plan({B}, now=2)
    assert moves.resume == [A] and moves.pause == [] and moves.seek == []
    assert gate.paused == {B: "backpressure"}


def test_a_hold_pauses_the_partition_until_its_retry_is_due_then_reads_from_the_held_event() -> None:
    gate = policy()
    assert gate.hold(A, 17, now=10.0) == 0.1  # the first delay of the backoff
    assert gate.plan(set(), now=10.0).pause == [A]
    assert gate.paused == {A: "registry"} and gate.busy
    early = gate.plan(set(), now=10.09)
    assert not early.retry_registry and early.resume == [] and early.seek == []
    due = gate.plan(set(), now=10.1)
    assert due.retry_registry and due.resume == [A] and due.seek == [(A, 17)]
    assert gate.paused == {} and gate.holds == {} and not gate.busy


def test_a_rewind_below_a_hold_lowers_it_so_the_retry_never_skips_the_rewound_events() -> None:
    """The checkpoint sought A back to 40 (an aborted transaction, an unverified delivery) while A
    was held at 100: the retry reads from 40, not 100, or 40..99 would be committed unread."""
    gate = policy()
    gate.hold(A, 100, now=0.0)
    gate.hold(B, 7, now=0.0)
    gate.rewound(A, 40)
    gate.rewound(B, 9)  # above the hold: the hold's own event comes first
    gate.rewound(C, 3)  # not held: nothing to change
    due = gate.plan(set(), now=1.0)
    assert sorted(due.seek) == [(A, 40), (B, 7)]
    assert C not in gate.holds


def test_holds_of_one_outage_share_one_retry_time() -> None:
    gate = policy()
    gate.hold(A, 1, now=0.0)
    gate.hold(B, 2, now=0.05)  # the same outage: retried with A, not 0.1s after it
    due = gate.plan(set(), now=0.1)
    assert sorted(due.seek) == [(A, 1), (B, 2)]


def test_the_backoff_doubles_per_outage_up_to_the_cap_and_restarts_once_the_registry_answers() -> None:
    gate = policy()
    delays = []
    now = 0.0
    for _ in range(4):
        delays.append(gate.hold(A, 5, now))
        now += 10
        assert gate.plan(set(), now).retry_registry
    assert delays == [0.1, 0.2, 0.4, 0.4]
    gate.recovered()
    assert gate.hold(A, 5, now) == 0.1


def test_a_held_partition_still_blocked_stays_paused_for_backpressure_and_is_not_sought() -> None:
    gate = policy()
    gate.hold(A, 9, now=0)
    gate.plan(set(), now=0)
    due = gate.plan({A}, now=1)
    assert due.retry_registry and due.resume == [] and due.seek == []
    assert gate.paused == {A: "registry"}  # paused already: the reason is the one it was paused for


def test_a_released_partition_is_forgotten() -> None:
    gate = policy()
    gate.hold(A, 3, now=0)
    gate.plan({B}, now=0)
    gate.release([A, B])
    assert gate.paused == {} and gate.holds == {} and not gate.busy
    assert gate.plan(set(), now=100).seek == []


def test_stalled_only_when_every_assigned_partition_is_paused() -> None:
    gate = policy()
    gate.plan({A}, now=0)
    assert gate.stalled({A}) and not gate.stalled({A, B}) and not gate.stalled(set())


class Valve:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def pause(self, partitions: list[tuple[str, int]]) -> None:
        self.calls.append(("pause", sorted(partitions)))

    def resume(self, partitions: list[tuple[str, int]]) -> None:
        self.calls.append(("resume", sorted(partitions)))

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self.calls.append(("seek", (topic, partition, offset)))


class Registry:
    def __init__(self, valve: Valve) -> None:
        self.valve, self.registry_healthy = valve, False

    def retry_registry(self) -> None:
        self.valve.calls.append(("retry_registry", None))


def test_the_gate_applies_moves_in_order_and_reports_them() -> None:
    valve = Valve()
    registry = Registry(valve)
    metrics = PipelineMetrics(reg := new_registry())
    health = Health()
    now = [0.0]
    gate = Gate(valve, registry, metrics, health, policy(), clock=lambda: now[0])

    def paused(reason: str) -> float | None:
        return reg.get_sample_value("activity_consumer_paused_partitions", {"reason": reason})

    gate.hold(Hold(A, 12, "registry down"))
    assert not health.registry_ok
    assert reg.get_sample_value("activity_consumer_registry_unavailable_total") == 1
    gate.turn({B})
    assert valve.calls == [("pause", [A, B])]
    assert (paused("backpressure"), paused("registry")) == (1, 1)

    valve.calls.clear()
    now[0] = 0.1  # the retry is due; B's commits caught up
    gate.turn(set())
    assert valve.calls == [("retry_registry", None), ("resume", [A, B]), ("seek", ("t", 0, 12))]
    assert (paused("backpressure"), paused("registry")) == (0, 0)

    valve.calls.clear()
    gate.turn(set())
    assert valve.calls == []

    gate.settle()
    assert not health.registry_ok  # the codec has not reached the registry yet
    registry.registry_healthy = True
    gate.settle()
    assert health.registry_ok
