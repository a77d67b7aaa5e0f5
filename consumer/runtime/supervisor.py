"""`run --processes N`: N worker processes in one consumer group, one metrics endpoint.

Python decodes on one core per process; Kafka's group protocol spreads the partitions
over the processes. Metrics aggregate through prometheus-client's multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR`), health through a shared array of heartbeats.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import tempfile
import time
from dataclasses import replace
from multiprocessing.sharedctypes import SynchronizedArray
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, multiprocess

from consumer.config import Settings, environment
from consumer.runtime.worker import Worker
from consumer.telemetry import logs
from consumer.telemetry.logs import get as get_logger
from consumer.telemetry.probes import Health, serve

log = get_logger("consumer.runtime.supervisor")


def _child(index: int, settings: Settings, beats: SynchronizedArray[Any], assigned: SynchronizedArray[Any]) -> None:
    logs.configure(settings.log_format, settings.log_level)

    class SharedHealth(Health):
        def turned(self) -> None:
            super().turned()
            beats[index] = time.time()
            assigned[index] = self.assigned

    worker = Worker(settings, health=SharedHealth())
    # The parent forwards SIGTERM/SIGINT; the child drains and exits on either.
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    raise SystemExit(worker.run())


class _GroupHealth:
    """/healthz and /readyz over every child: all alive and turning; all assigned or idle."""

    def __init__(self, procs: list[Any], beats: SynchronizedArray[Any], assigned: SynchronizedArray[Any]) -> None:
        self.procs, self.beats, self.assigned = procs, beats, assigned
        self.stale_after = 30.0
        self.stopping = False

    def live(self) -> tuple[bool, str]:
        now = time.time()
        dead = [i for i, p in enumerate(self.procs) if not p.is_alive()]
        stale = [i for i in range(len(self.procs)) if now - self.beats[i] > self.stale_after]
        ok = not dead and not stale
        return ok, f"{len(self.procs)} process(es); dead {dead}; stale {stale}"

    def ready(self) -> tuple[bool, str]:
        ok, why = self.live()
        total = sum(self.assigned[i] for i in range(len(self.procs)))
        return ok and total > 0 and not self.stopping, f"{why}; {total} partition(s) assigned"


def run_processes(settings: Settings, processes: int) -> int:
    if not environment().prometheus_multiproc_dir:  # the children's prometheus-client reads it at import
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="activity-metrics-")
    ctx = mp.get_context("spawn")  # fresh interpreters: they read PROMETHEUS_MULTIPROC_DIR at import
    beats = ctx.Array("d", [time.time()] * processes)
    assigned = ctx.Array("i", [0] * processes)
    procs = []
    for i in range(processes):
        child_settings = replace(
            settings,
            metrics_port=0,
            transactional_id=f"{settings.effective_transactional_id()}-{i}",
        )
        p = ctx.Process(target=_child, args=(i, child_settings, beats, assigned), name=f"worker-{i}")
        p.start()
        procs.append(p)
    health = _GroupHealth(procs, beats, assigned)
    server = None
    if settings.metrics_port:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        server = serve(settings.metrics_host, settings.metrics_port, registry, health)

    def forward(signum: int, _frame: FrameType | None) -> None:
        health.stopping = True
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    log.info("processes_started", processes=processes)
    # One process failing (a fatal delivery error) stops the others: the pod restarts whole.
    while any(p.is_alive() for p in procs):
        time.sleep(0.2)
        if not health.stopping and any(p.exitcode not in (None, 0) for p in procs):
            log.error("process_failed", exit_codes=[p.exitcode for p in procs])
            forward(signal.SIGTERM, None)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.pid is not None:
            multiprocess.mark_process_dead(p.pid)  # type: ignore[no-untyped-call]
    if server is not None:
        server.shutdown()
    log.info("processes_stopped", exit_codes=codes)
    return 0 if all(c == 0 for c in codes) else 1
