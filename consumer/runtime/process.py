"""The process entry point: one worker, or `--processes N` under the supervisor.

Arrows point one way: process -> supervisor -> worker; nothing imports this module back.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import replace
from types import FrameType

from consumer.config import Settings
from consumer.runtime import instance
from consumer.runtime.supervisor import run_processes
from consumer.runtime.worker import Worker
from consumer.telemetry.logs import get as get_logger
from consumer.telemetry.probes import serve

log = get_logger("consumer.process")


def install_signal_handlers(stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT stop fetching; the worker then drains, commits and exits 0."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def serve_worker(worker: Worker, on_signal: Callable[[], None] | None = None) -> int:
    """Run `worker` with its metrics and probes served, until `worker.stop()`: by default a
    signal calls it; `on_signal` replaces that (the demo stops its generator first)."""
    settings = worker.settings
    server = (
        serve(settings.metrics_host, settings.metrics_port, worker.registry, worker.health)
        if settings.metrics_port
        else None
    )
    install_signal_handlers(on_signal or worker.stop)
    try:
        return worker.run()
    finally:
        if server is not None:
            server.shutdown()


def run(settings: Settings) -> int:
    slot = None
    if settings.exactly_once and settings.transactional_id is None:
        slot = instance.claim(settings.effective_transactional_id())  # held until this process exits
        settings = replace(settings, transactional_id=slot.transactional_id(settings.effective_transactional_id()))
        log.info("transactional_id_chosen", transactional_id=settings.transactional_id, slot=slot.number)
    if settings.processes > 1:
        return run_processes(settings, settings.processes)
    return serve_worker(Worker(settings))
