"""The retrying router: bounded retries with a doubling, capped backoff (delays from the
settings), a per-batch cap on sleep, and its metrics. Sleep is recorded, never taken."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from consumer.catalogue import family_of
from consumer.config import Settings
from consumer.model import Activity, Result
from consumer.pipeline.retrying import HandlerFailed, RetryingRouter
from consumer.telemetry.metrics import PipelineMetrics, new_registry

ACTIVITY = Activity(
    id="evcus_1",
    type="customer.segment.entered",
    canonical_type="customer.segment.entered",
    family=family_of("customer.segment.entered"),
    data={},
    created_at_ms=0,
    group_id=None,
)
RESULT = Result(stream="segments", key="k", schema="S", value={})


class Flaky:
    """A router whose route() raises `fails` times, then answers."""

    def __init__(self, fails: int) -> None:
        self.fails, self.calls = fails, 0

    def route(self, activity: Activity) -> list[Result]:
        self.calls += 1
        if self.calls <= self.fails:
            raise ValueError(f"bad data {self.calls}")
        return [RESULT]


def build(router: Flaky, **settings: object) -> tuple[RetryingRouter, list[float], Callable[[str, str], float | None]]:
    slept: list[float] = []
    registry = new_registry()
    retrying = RetryingRouter(router, Settings(**settings), PipelineMetrics(registry), sleep=slept.append)  # type: ignore[arg-type]

    def sample(name: str, family: str) -> float | None:
        return registry.get_sample_value(name, {"family": family})

    return retrying, slept, sample


def test_a_handler_that_answers_is_timed_and_never_sleeps() -> None:
    retrying, slept, sample = build(Flaky(0))
    assert retrying.route(ACTIVITY) == [RESULT]
    assert slept == []
    assert sample("activity_consumer_handler_duration_seconds_count", ACTIVITY.family) == 1
    assert sample("activity_consumer_retries_total", ACTIVITY.family) == 0


def test_retries_back_off_doubling_up_to_the_cap() -> None:
    router = Flaky(4)
    retrying, slept, sample = build(router, max_retries=5, retry_backoff_ms=100, retry_backoff_max_ms=300)
    assert retrying.route(ACTIVITY) == [RESULT]
    assert slept == [0.1, 0.2, 0.3, 0.3]
    assert router.calls == 5
    assert sample("activity_consumer_retries_total", ACTIVITY.family) == 4
    assert sample("activity_consumer_handler_duration_seconds_count", ACTIVITY.family) == 1  # the try that answered


def test_a_handler_failing_every_try_raises_handler_failed_naming_the_error() -> None:
    router = Flaky(100)
    retrying, slept, _ = build(router, max_retries=2, retry_backoff_ms=10, retry_backoff_max_ms=1000)
    with pytest.raises(HandlerFailed) as failed:
        retrying.route(ACTIVITY)
    assert str(failed.value) == "ValueError: bad data 3"
    assert isinstance(failed.value.__cause__, ValueError)
    assert router.calls == 3 and slept == [0.01, 0.02]  # no sleep after the last try


def test_retry_sleep_is_capped_per_batch_and_the_budget_restarts_with_the_next() -> None:
    # max.poll.interval.ms 300 -> a budget of 100 ms of retry sleep per batch
    kafka = {"max.poll.interval.ms": "300"}
    retrying, slept, _ = build(Flaky(100), max_retries=3, retry_backoff_ms=40, retry_backoff_max_ms=1000, kafka=kafka)
    for _ in range(2):  # two events of one batch
        with pytest.raises(HandlerFailed):
            retrying.route(ACTIVITY)
    assert slept == pytest.approx([0.04, 0.06])  # 40 + 60 ms: the budget is spent, the rest go without delay
    retrying.new_batch()
    slept.clear()
    with pytest.raises(HandlerFailed):
        retrying.route(ACTIVITY)
    assert slept == pytest.approx([0.04, 0.06])
