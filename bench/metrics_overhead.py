"""What the Prometheus metrics cost the worker: metrics on vs. metrics off, in one run.

    python -m bench.metrics_overhead [--events 20000] [--partitions 4] [--repeat 3]

The worker has no switch that turns metrics off (`--metrics-port 0` only drops the HTTP
endpoint; every counter is still updated), so "off" swaps the worker's `PipelineMetrics` and
`BusinessMetrics` (and the checkpoint's reference) for no-op stand-ins after construction.

1. End to end: `Worker.run` in-process against one Tansu broker, the corpus mix (bench/stream.py),
   a fresh group per run, modes interleaved. The clock is bench/run.py's: first batch in
   hand -> all N processed, results acknowledged, offsets committed.
2. In isolation: `Worker.process` over the same pre-fetched real `Message` objects in batches of
   500 (decode, route, produce to Tansu, metrics), modes interleaved; the difference divided by N
   is the per-event cost of the metric calls. Deliveries are flushed outside the clock. Then the
   same without producing (the sink's calls are no-ops): less noise from librdkafka's threads.
3. The metric calls alone, replayed on pre-decoded, pre-routed events.
4. One /metrics scrape (`generate_latest` of the worker's registry after a run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import generate_latest

from bench.stream import build_stream, prefetch, produce
from consumer.config import Settings
from consumer.devtools.embedded_broker import EmbeddedBroker, create_topics
from consumer.runtime.worker import Worker
from consumer.telemetry import logs

INPUT = "customer-activity"
BATCH = 500
GROUP_TUNING = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


class _Noop:
    """Stands in for a metric, a labelled child of one, or a histogram."""

    def labels(self, *_a: Any, **_k: Any) -> _Noop:
        return self

    def inc(self, *_a: Any, **_k: Any) -> None: ...
    def observe(self, *_a: Any, **_k: Any) -> None: ...
    def set(self, *_a: Any, **_k: Any) -> None: ...
    def remove(self, *_a: Any, **_k: Any) -> None: ...


class NoopPipelineMetrics:
    def __init__(self, like: Any) -> None:
        for name in vars(like):
            setattr(self, name, _Noop())

    def observe_stats(self, _stats_json: str) -> dict[str, Any]:
        return {}

    def forget_partition(self, _topic: str, _partition: int) -> None: ...


class NoopBusinessMetrics:
    def observe(self, _results: Any) -> None: ...


def metrics_off(worker: Worker) -> None:
    noop = NoopPipelineMetrics(worker.metrics)
    for part in (worker, worker.checkpoint, worker.tallies, worker.router, worker.gate, worker.member):
        part.metrics = noop  # type: ignore[assignment]
    worker.business = worker.tallies.business = NoopBusinessMetrics()  # type: ignore[assignment]


def _settings(bootstrap: str, tag: str) -> Settings:
    return Settings(
        bootstrap_servers=bootstrap,
        topics=(INPUT,),
        group_id=f"bench-metrics-{tag}-{uuid.uuid4().hex[:8]}",
        output_prefix=f"bench.metrics.{tag}.",
        dlq_topic=f"bench.metrics.{tag}.dlq",
        metrics_port=0,
        stop_when_idle=2,
        batch_size=BATCH,
        kafka=GROUP_TUNING,
    ).validate()


def end_to_end(bootstrap: str, n: int, metrics: bool) -> tuple[float, Worker]:
    """Seconds from the first batch to all N processed, acknowledged and committed."""
    worker = Worker(_settings(bootstrap, "on" if metrics else "off"))
    if not metrics:
        metrics_off(worker)
    clock: dict[str, float] = {}
    process, poll = worker.process, worker.checkpoint.poll

    def timed_process(msgs: list[Any]) -> None:
        clock.setdefault("first", time.perf_counter())
        process(msgs)

    def timed_poll() -> None:
        poll()
        if "done" not in clock and worker.processed >= n and not worker.checkpoint.in_flight():
            clock["done"] = time.perf_counter()
            worker.stop()

    worker.process = timed_process  # type: ignore[method-assign]
    worker.checkpoint.poll = timed_poll  # type: ignore[method-assign]
    if worker.run() != 0:
        raise RuntimeError("the worker failed")
    if "done" not in clock:
        raise RuntimeError(f"processed only {worker.processed} of {n}")
    return clock["done"] - clock["first"], worker


def in_isolation(bootstrap: str, msgs: list[Any], partitions: int, metrics: bool, *, sink: bool) -> float:
    """Seconds `Worker.process` takes over `msgs`, in batches, without the poll loop.

    sink=False replaces the producing calls with no-ops: decode, route and metrics only, on one
    core, without librdkafka's threads competing for the CPU (the least noisy comparison).
    """
    worker = Worker(_settings(bootstrap, "iso"))
    if sink:
        worker.sink.ensure_topics([INPUT])
    else:
        worker.sink.forward = _discard  # type: ignore[method-assign]
        worker.sink.dead_letter = _discard  # type: ignore[method-assign]
    if not metrics:
        metrics_off(worker)
    batches = [msgs[i : i + BATCH] for i in range(0, len(msgs), BATCH)]
    try:
        worker.sink.flush(10)
        started = time.perf_counter()
        for batch in batches:
            worker.process(batch)
            worker.sink.poll(0)  # what the loop does between batches (delivery callbacks)
        took = time.perf_counter() - started
        if worker.sink.flush(60):
            raise RuntimeError("deliveries still outstanding")
        if worker.processed != len(msgs):
            raise RuntimeError(f"processed {worker.processed} of {len(msgs)}")
        return took
    finally:
        worker.source.close()


def _discard(*_a: Any, **_k: Any) -> None: ...


def metric_calls_alone(bootstrap: str, msgs: list[Any], metrics: bool) -> float:
    """Seconds for just the metric calls `Worker.process` makes for `msgs` (replayed from its code:
    consumed/processed per type, handler duration per family, results per stream, event age,
    business metrics), with every event decoded and routed beforehand, outside the clock."""
    from consumer.catalogue import label_of
    from consumer.model import activity_from_record

    worker = Worker(_settings(bootstrap, "calls"))
    try:
        if not metrics:
            metrics_off(worker)
        prepared = []
        for m in msgs:
            activity = activity_from_record(worker.codec.decode(m.value()))
            prepared.append((label_of(activity.type), activity.family, worker.router.route(activity), activity))
        pm, business = worker.metrics, worker.business
        now = time.time()
        started = time.perf_counter()
        for i in range(0, len(prepared), BATCH):
            consumed: dict[str, int] = {}
            ages = []
            for label, family, results, activity in prepared[i : i + BATCH]:
                consumed[label] = consumed.get(label, 0) + 1
                pm.handler_duration.labels(family).observe(0.0001)
                business.observe(results)
                for r in results:
                    pm.results.labels(r.stream).inc()
                ages.append(now - activity.created_at_ms / 1000)
            for label, k in consumed.items():
                pm.consumed.labels(label).inc(k)
                pm.processed.labels(label).inc(k)
            for age in ages:
                pm.event_age.observe(age)
        return time.perf_counter() - started
    finally:
        worker.source.close()


def _rounds(repeat: int, fn: Callable[[bool], float], label: str, n: int) -> dict[bool, list[float]]:
    out: dict[bool, list[float]] = {True: [], False: []}
    for r in range(repeat):
        for metrics in (True, False) if r % 2 == 0 else (False, True):
            took = fn(metrics)
            out[metrics].append(took)
            print(
                f"  [{label} round {r + 1}] metrics {'on ' if metrics else 'off'}: {n / took:>9,.0f} events/s",
                flush=True,
            )
    return out


def _summary(title: str, n: int, runs: dict[bool, list[float]]) -> str:
    on, off = statistics.median(runs[True]), statistics.median(runs[False])
    cost_us = (on - off) / n * 1e6
    return (
        f"{title}\n"
        f"  metrics on : {n / on:>9,.0f} events/s  (median of {len(runs[True])}: {on:.3f}s)\n"
        f"  metrics off: {n / off:>9,.0f} events/s  (median of {len(runs[False])}: {off:.3f}s)\n"
        f"  on/off throughput ratio {off / on:.3f}  ->  metrics cost {100 * (1 - off / on):+.1f}% of the time,"
        f" {cost_us:+.1f} us per event"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per mode, interleaved (medians reported)")
    args = parser.parse_args(argv)
    logs.configure("json", "warning", stream=sys.stderr)
    n = args.events
    t0 = time.perf_counter()
    stream = build_stream(n)
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, {INPUT: args.partitions})
        produce(bootstrap, INPUT, stream)
        del stream
        print(f"{n} corpus-mix events on {INPUT} ({args.partitions} partitions), Tansu at {bootstrap}", flush=True)

        last: list[Worker] = []

        def e2e(metrics: bool) -> float:
            took, worker = end_to_end(bootstrap, n, metrics)
            if metrics:
                last[:] = [worker]
            return took

        e2e_runs = _rounds(args.repeat, e2e, "end to end", n)
        msgs = prefetch(bootstrap, INPUT, n)
        rounds = max(args.repeat, 5)
        iso_runs = _rounds(
            rounds, lambda m: in_isolation(bootstrap, msgs, args.partitions, m, sink=True), "process()", n
        )
        cpu_runs = _rounds(
            rounds, lambda m: in_isolation(bootstrap, msgs, args.partitions, m, sink=False), "process() no sink", n
        )
        call_runs = _rounds(rounds, lambda m: metric_calls_alone(bootstrap, msgs, m), "metric calls", n)

        registry = last[0].registry
        reps = 50
        started = time.perf_counter()
        for _ in range(reps):
            body = generate_latest(registry)
        scrape_ms = (time.perf_counter() - started) / reps * 1000

    print()
    print(_summary("End to end (Worker.run, at-least-once, first batch -> all committed):", n, e2e_runs))
    print(_summary("Worker.process in isolation (decode, route, produce, metrics; batches of 500):", n, iso_runs))
    print(_summary("Worker.process without producing (decode, route, metrics):", n, cpu_runs))
    on = statistics.median(call_runs[True])
    off = statistics.median(call_runs[False])
    print(f"The metric calls alone: {(on - off) / n * 1e6:.1f} us per event (median of {len(call_runs[True])})")
    print(f"One /metrics scrape: {scrape_ms:.1f} ms for {len(body.splitlines())} lines ({len(body) / 1024:.0f} KiB)")
    print(f"total wall time {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
