"""The partition gate beside the source: which assigned partitions are fetched.

A partition stops being fetched for one of two reasons:
- backpressure: it was read too far past its last commit (the checkpoint names it), so a
  crash re-delivers a bounded number of events; it resumes when its commits catch up;
- registry: the Schema Registry could not serve one of its events (`Hold`); after a capped
  backoff it is read again from that event. An outage is waited out, never dead-lettered.

`GatePolicy` decides, with no I/O and the clock passed in; `Gate` applies its decisions to the
consumer (pause, resume, seek) and reports them (metrics, health, logs).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from consumer.model import TP
from consumer.pipeline.step import Hold
from consumer.telemetry.logs import get as get_logger
from consumer.telemetry.metrics import PipelineMetrics
from consumer.telemetry.probes import Health

log = get_logger("consumer.pipeline.gate")

Reason = Literal["backpressure", "registry"]
REASONS: Final[tuple[Reason, ...]] = ("backpressure", "registry")


@dataclass(frozen=True, slots=True)
class Moves:
    """What to do to the consumer, in this order: retry the registry, resume, seek, pause."""

    retry_registry: bool
    resume: list[TP]
    seek: list[tuple[TP, int]]  # resumed registry holds: read again from the held event
    pause: list[TP]


class GatePolicy:
    """Which partitions are paused and why, and when held partitions are retried."""

    def __init__(self, delay_ms: Callable[[int], float]) -> None:
        self._delay_ms = delay_ms  # retry n (0-based) -> its delay
        self.paused: dict[TP, Reason] = {}
        self.holds: dict[TP, int] = {}  # partition -> offset to read again from
        self._failures = 0  # registry outages in a row: the backoff grows with them
        self._retry_at = 0.0

    def hold(self, partition: TP, offset: int, now: float) -> float:
        """Hold `partition` at `offset`; the seconds until every held partition is retried."""
        delay = self._delay_ms(self._failures) / 1000
        if not self.holds:  # one retry time for all holds of an outage
            self._failures += 1
            self._retry_at = now + delay
        self.holds[partition] = offset
        return delay

    def plan(self, blocked: Iterable[TP], now: float) -> Moves:
        """The moves that pause what is held or `blocked` and resume the rest; held partitions
        whose retry is due are let go (and sought back to their held event)."""
        retry_registry = bool(self.holds) and now >= self._retry_at
        retry: dict[TP, int] = {}
        if retry_registry:
            retry, self.holds = self.holds, {}
        want: dict[TP, Reason] = dict.fromkeys(self.holds, "registry")
        for key in blocked:
            want.setdefault(key, "backpressure")
        resume = [key for key in self.paused if key not in want]
        pause = [key for key in want if key not in self.paused]
        for key in resume:
            del self.paused[key]
        self.paused.update((key, want[key]) for key in pause)
        seek = [(key, offset) for key, offset in retry.items() if key not in want]
        return Moves(retry_registry, resume, seek, pause)

    def counts(self) -> Counter[Reason]:
        return Counter(self.paused.values())

    def recovered(self) -> None:
        """The registry answers again: the next outage starts from the first delay."""
        self._failures = 0

    def rewound(self, partition: TP, offset: int) -> None:
        """The checkpoint sought `partition` back to `offset` (an aborted transaction, an
        unverified delivery): a hold past it must read again from there, not skip the gap."""
        held = self.holds.get(partition)
        if held is not None and offset < held:
            self.holds[partition] = offset

    def release(self, partitions: Iterable[TP]) -> None:
        """Partitions this member no longer owns."""
        for key in partitions:
            self.paused.pop(key, None)
            self.holds.pop(key, None)

    def stalled(self, assigned: Set[TP]) -> bool:
        """Every assigned partition paused: nothing to fetch."""
        return bool(assigned) and assigned <= self.paused.keys()

    @property
    def busy(self) -> bool:
        """Partitions paused or held are waiting, not idle."""
        return bool(self.paused or self.holds)


class Valve(Protocol):
    """The consumer's side of the gate (`Source`)."""

    def pause(self, partitions: list[TP]) -> None: ...
    def resume(self, partitions: list[TP]) -> None: ...
    def seek(self, topic: str, partition: int, offset: int) -> None: ...


class RegistryCache(Protocol):
    """The codec's view of the registry (`AvroCodec`)."""

    @property
    def registry_healthy(self) -> bool: ...

    def retry_registry(self) -> None: ...


class Gate:
    """`GatePolicy` applied to the consumer, once per loop turn."""

    def __init__(
        self,
        valve: Valve,
        registry: RegistryCache,
        metrics: PipelineMetrics,
        health: Health,
        policy: GatePolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.valve = valve
        self.registry = registry
        self.metrics = metrics
        self.health = health
        self.policy = policy
        self._clock = clock

    @property
    def paused(self) -> dict[TP, Reason]:
        return self.policy.paused

    @property
    def holds(self) -> dict[TP, int]:
        return self.policy.holds

    def turn(self, blocked: Iterable[TP]) -> None:
        """Pause what is held or `blocked`, resume the rest, retry held partitions when due."""
        moves = self.policy.plan(blocked, self._clock())
        if moves.retry_registry:
            self.registry.retry_registry()
        if moves.resume:
            self.valve.resume(moves.resume)
        for (topic, partition), offset in moves.seek:  # after resume(): the fetch restarts at the held event
            self.valve.seek(topic, partition, offset)
        if moves.pause:
            self.valve.pause(moves.pause)
        if moves.resume or moves.pause:
            counts = self.policy.counts()
            for reason in REASONS:
                self.metrics.paused_partitions.labels(reason).set(counts[reason])

    def hold(self, hold: Hold) -> None:
        delay = self.policy.hold(hold.partition, hold.offset, self._clock())
        self.health.registry_ok = False
        self.metrics.registry_unavailable.inc()
        log.warning(
            "registry_unavailable",
            topic=hold.partition[0],
            partition=hold.partition[1],
            offset=hold.offset,
            retry_in_seconds=round(delay, 3),
            error=hold.reason,
        )

    def settle(self) -> None:
        """After a batch: once the registry answers again, say so and reset the backoff."""
        if not self.health.registry_ok and self.registry.registry_healthy:
            self.policy.recovered()
            self.health.registry_ok = True
            log.info("registry_available")
