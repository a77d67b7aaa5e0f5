"""The router, retried: a handler that raises is run again after a capped, doubling backoff.

Delays come from `Settings.retry_delay_ms`; the sleep of one batch is capped by
`Settings.retry_budget_ms`, after which retries go without delay, so the loop keeps turning
(liveness, max.poll.interval.ms). A handler that fails every try raises `HandlerFailed`: the
event is dead-lettered, the partition moves on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from consumer.config import Settings
from consumer.errors import ConsumerError
from consumer.model import Activity, Result
from consumer.telemetry.metrics import PipelineMetrics


class HandlerFailed(ConsumerError):
    """A handler raised on every try; the event goes to the dead-letter topic."""


class Routes(Protocol):
    def route(self, activity: Activity) -> list[Result]: ...


class RetryingRouter:
    """`route()` with bounded retries; times each successful call per family."""

    def __init__(
        self,
        router: Routes,
        settings: Settings,
        metrics: PipelineMetrics,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.router = router
        self.metrics = metrics
        self._attempts = settings.max_retries + 1
        self._delay_ms = settings.retry_delay_ms
        self._budget_ms = settings.retry_budget_ms()
        self._sleep = sleep
        self._timers: dict[str, Any] = {}
        self.slept = 0.0  # retry sleep in the current batch, seconds

    def new_batch(self) -> None:
        """The per-batch sleep budget starts again."""
        self.slept = 0.0

    def route(self, activity: Activity) -> list[Result]:
        family = activity.family
        timer = self._timers.get(family)
        if timer is None:  # labels() is a locked dict lookup: once per family, not per event
            timer = self._timers[family] = self.metrics.handler_duration.labels(family)
        attempts = self._attempts
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                results = self.router.route(activity)
                timer.observe(time.perf_counter() - started)
                return results
            except Exception as exc:  # a handler bug must not stall the partition
                if attempt + 1 >= attempts:
                    raise HandlerFailed(f"{type(exc).__name__}: {exc}"[:500]) from exc
                self.metrics.retries.labels(family).inc()
                delay = min(self._delay_ms(attempt), self._budget_ms - self.slept * 1000)
                if delay > 0:
                    self._sleep(delay / 1000)
                    self.slept += delay / 1000
        raise AssertionError("unreachable")  # pragma: no cover
