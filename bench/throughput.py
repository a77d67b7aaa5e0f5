"""Throughput of the worker against a raw-consume ceiling, a plain batch loop and Quix Streams.

    python -m bench.throughput [--events 50000] [--partitions 4] [--only raw,plain,alo,eos,quix]

One Tansu broker (EmbeddedBroker) serves every contender. The input topic is written once
with N events of the corpus mix (bench/stream.py); then each contender, one at a time,
consumes the whole topic in its own fresh consumer group and writes its results to its own
output topics (`bench.<contender>.<stream>`, pre-created with the input's partition count).

The clock of every contender covers the same span: from the moment the first batch/message
of input reaches the contender's code, to the moment all N events are processed, their
results acknowledged by the broker and the consumed offsets committed (or, for exactly-once,
the last transaction committed). The group join (about 3 s on Tansu with
session.timeout.ms=6000) and the shutdown (leaving the group, closing clients) are outside
the clock and shown separately in the `join s` column.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer
from fastavro import schemaless_reader

from bench.stream import HEADER, build_stream, produce
from consumer.config import Settings
from consumer.contract import STREAMS
from consumer.devtools.embedded_broker import EmbeddedBroker, create_topics
from consumer.model import activity_from_record
from consumer.pipeline.codec import AvroCodec, SchemaStore
from consumer.pipeline.codec.results import ResultEncoder
from consumer.pipeline.router import Router
from consumer.runtime.worker import Worker
from consumer.telemetry import logs
from consumer.telemetry.kafka_logs import routed

INPUT = "customer-activity"
BATCH = 500
GROUP_TUNING = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}
# What the worker's Sink uses, so that the plain loop pays the same producer costs.
SINK_PRODUCER = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
}


@dataclass
class Run:
    name: str
    events: int
    seconds: float  # the clock described in the module docstring
    join_seconds: float  # subscribe -> first input in hand
    results: int = -1  # records produced downstream, where the contender reports it
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


def _group(name: str) -> str:
    return f"bench-{name}-{uuid.uuid4().hex[:8]}"


def _consumer(bootstrap: str, name: str) -> Consumer:
    return Consumer(
        routed(
            {
                "bootstrap.servers": bootstrap,
                "group.id": _group(name),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                **GROUP_TUNING,
            }
        )
    )


# -- contenders ---------------------------------------------------------------------------


def raw_consume(bootstrap: str, n: int, _prefix: str) -> Run:
    """consume(500) until N records are in hand: no decode, no produce, no commit."""
    consumer = _consumer(bootstrap, "raw")
    consumer.subscribe([INPUT])
    started = time.perf_counter()
    first = None
    seen = 0
    try:
        while seen < n:
            msgs = consumer.consume(BATCH, 0.5)
            if not msgs:
                continue
            if first is None:
                first = time.perf_counter()
            for m in msgs:
                if m.error() is None:
                    seen += 1
        done = time.perf_counter()
    finally:
        consumer.close()
    assert first is not None
    return Run("raw consume (ceiling)", seen, done - first, first - started, note="consume(500), no decode")


def plain_loop(bootstrap: str, n: int, prefix: str) -> Run:
    """consume(500); per event fastavro full decode with the writer schema, Router, ResultEncoder,
    produce (same producer config and headers as the worker's Sink); per batch flush + commit."""
    consumer = _consumer(bootstrap, "plain")
    producer = Producer(routed({"bootstrap.servers": bootstrap, **SINK_PRODUCER}))
    writer = AvroCodec().current.parsed
    router = Router()
    encoder = ResultEncoder(SchemaStore())
    topics = {s: f"{prefix}{s}" for s in STREAMS}
    errors: list[Any] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    consumer.subscribe([INPUT])
    started = time.perf_counter()
    first = None
    seen = produced = 0
    try:
        while seen < n:
            msgs = consumer.consume(BATCH, 0.5)
            if not msgs:
                continue
            if first is None:
                first = time.perf_counter()
            for m in msgs:
                if m.error() is not None:
                    continue
                buf = io.BytesIO(m.value())
                buf.seek(HEADER)
                record = schemaless_reader(buf, writer, None)
                activity = activity_from_record(record)
                headers = [("activity-id", activity.id.encode()), ("activity-type", activity.type.encode())]
                for r in router.route(activity):
                    value = encoder.encode(r.schema, r.value)
                    while True:
                        try:
                            producer.produce(
                                topics[r.stream],
                                value,
                                r.key,
                                headers=[*headers, ("avro-schema", r.schema.encode())],
                                on_delivery=report,
                            )
                            break
                        except BufferError:
                            producer.poll(0.05)
                    produced += 1
                seen += 1
            producer.flush(30)
            if errors:
                raise RuntimeError(f"plain loop: delivery failed: {errors[0]}")
            consumer.commit(asynchronous=False)
        done = time.perf_counter()
    finally:
        consumer.close()
    assert first is not None
    return Run(
        "plain loop (decode+route+encode+produce, flush+commit/batch)",
        seen,
        done - first,
        first - started,
        produced,
    )


def _worker(guarantee: str) -> Callable[[str, int, str], Run]:
    def run(bootstrap: str, n: int, prefix: str) -> Run:
        settings = Settings(
            bootstrap_servers=bootstrap,
            topics=(INPUT,),
            group_id=_group(f"worker-{guarantee}"),
            processing_guarantee=guarantee,  # type: ignore[arg-type]
            output_prefix=prefix,
            dlq_topic=f"{prefix}dlq",
            metrics_port=0,
            stop_when_idle=2,
            batch_size=BATCH,
            kafka=GROUP_TUNING,
        ).validate()
        worker = Worker(settings)
        clock: dict[str, float] = {}
        process, poll = worker.process, worker.checkpoint.poll

        def timed_process(msgs: list[Any]) -> None:
            clock.setdefault("first", time.perf_counter())
            process(msgs)

        def timed_poll() -> None:
            # ALO: poll() waits for the batch's acks and commits synchronously.
            # EOS: the batch's transaction was committed inside process(); poll() is a no-op.
            poll()
            if "done" not in clock and worker.processed >= n and not worker.checkpoint.in_flight():
                clock["done"] = time.perf_counter()
                worker.stop()  # do not wait for stop_when_idle: the clock has stopped anyway

        worker.process = timed_process  # type: ignore[method-assign]
        worker.checkpoint.poll = timed_poll  # type: ignore[method-assign]
        started = time.perf_counter()
        code = worker.run()
        ended = time.perf_counter()
        if code != 0:
            raise RuntimeError(f"worker ({guarantee}) exited with {code}")
        done = clock.get("done", ended)
        return Run(
            f"our worker, {guarantee} (Worker.run in-process)",
            worker.processed,
            done - clock["first"],
            clock["first"] - started,
            note="" if "done" in clock else "clock ran to idle stop",
            extra={"shutdown_s": ended - done},
        )

    return run


def quix(guarantee: str) -> Callable[[str, int, str], Run]:
    def run(bootstrap: str, n: int, prefix: str) -> Run:
        import logging

        from quixstreams import Application
        from quixstreams import __version__ as quix_version
        from quixstreams.models.serializers import Deserializer, Serializer

        codec = AvroCodec()
        encoder = ResultEncoder(codec.store)
        router = Router()
        clock: dict[str, float] = {}

        class ActivityDeserializer(Deserializer):
            def __call__(self, value: bytes, ctx: Any) -> Any:
                if "first" not in clock:
                    clock["first"] = time.perf_counter()
                return activity_from_record(codec.decode(value))

        class ResultSerializer(Serializer):
            def __call__(self, value: Any, ctx: Any) -> bytes:
                return encoder.encode(value.schema, value.value)

        processed = 0
        app: Any = None

        def on_processed(_topic: str, _partition: int, _offset: int) -> None:
            nonlocal processed
            processed += 1
            if processed >= n:
                app.stop()

        state_dir = tempfile.mkdtemp(prefix="bench-quix-")
        app = Application(
            broker_address=bootstrap,
            consumer_group=_group(f"quix-{guarantee}"),
            auto_offset_reset="earliest",
            processing_guarantee=guarantee,
            consumer_extra_config=dict(GROUP_TUNING),
            state_dir=state_dir,
            use_changelog_topics=False,
            on_message_processed=on_processed,
            loglevel="WARNING",
        )
        logging.getLogger("quixstreams").setLevel(logging.WARNING)
        source = app.topic(INPUT, value_deserializer=ActivityDeserializer(), key_deserializer="bytes")
        outputs = {
            s: app.topic(f"{prefix}{s}", value_serializer=ResultSerializer(), key_serializer="str") for s in STREAMS
        }
        sdf = app.dataframe(source)
        sdf = sdf.apply(router.route, expand=True)
        sdf.to_topic(lambda value, _key, _ts, _headers: outputs[value.stream], key=lambda r: r.key)

        # The final checkpoint commit (flush + offsets, or the transaction) runs after stop():
        # the clock stops when it returns.
        ctx = app._processing_context
        commit = ctx.commit_checkpoint

        def timed_commit(*a: Any, **kw: Any) -> None:
            commit(*a, **kw)
            if kw.get("force") and processed >= n and "done" not in clock:
                clock["done"] = time.perf_counter()

        ctx.commit_checkpoint = timed_commit
        started = time.perf_counter()
        app.run(collect=False)
        ended = time.perf_counter()
        done = clock.get("done", ended)
        return Run(
            f"Quix Streams {quix_version} Application, {guarantee}",
            processed,
            done - clock["first"],
            clock["first"] - started,
            note="commit_interval=5s (default)",
            extra={"shutdown_s": ended - done},
        )

    return run


CONTENDERS: dict[str, Callable[[str, int, str], Run]] = {
    "raw": raw_consume,
    "plain": plain_loop,
    "alo": _worker("at-least-once"),
    "eos": _worker("exactly-once"),
    "quix": quix("at-least-once"),
    "quix-eos": quix("exactly-once"),
}
DEFAULT = "raw,plain,alo,eos,quix"


def _table(runs: dict[str, list[Run]]) -> str:
    """One row per contender: the median round (by events/s), with the spread over rounds."""
    med = {k: sorted(v, key=lambda r: r.rate)[len(v) // 2] for k, v in runs.items() if v}
    ref = med.get("alo")
    rounds = max((len(v) for v in runs.values()), default=1)
    head = (
        f"{'contender':<62} {'events':>7} {'seconds':>8} {'events/s':>9} {'vs worker':>9} {'join s':>7}"
        + (f" {'min..max events/s':>19}" if rounds > 1 else "")
        + "  note"
    )
    lines = [head, "-" * len(head)]
    for key, r in med.items():
        ratio = f"{r.rate / ref.rate:.2f}x" if ref else "n/a"
        spread = ""
        if rounds > 1:
            rates = [x.rate for x in runs[key]]
            spread = f" {f'{min(rates):,.0f}..{max(rates):,.0f}':>19}"
        lines.append(
            f"{r.name:<62} {r.events:>7} {r.seconds:>8.2f} {r.rate:>9,.0f} {ratio:>9} {r.join_seconds:>7.1f}"
            f"{spread}  {r.note}"
        )
    lines.append(
        "vs worker = contender events/s / our worker (at-least-once) events/s"
        + (f"; medians of {rounds} interleaved rounds." if rounds > 1 else ", one round.")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--only", default=DEFAULT, help=f"comma list of {','.join(CONTENDERS)} (default {DEFAULT})")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds; each round runs every contender once, in a rotated order; the table shows medians",
    )
    args = parser.parse_args(argv)
    chosen = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contenders {unknown}; choose from {list(CONTENDERS)}")

    logs.configure("json", "warning", stream=sys.stderr)
    n = args.events
    t0 = time.perf_counter()
    stream = build_stream(n)
    avg = sum(len(v) for _, _, v in stream) / n
    print(f"built {n} events ({avg:.0f} B Avro on average) in {time.perf_counter() - t0:.1f}s", flush=True)

    runs: dict[str, list[Run]] = {name: [] for name in chosen}
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, {INPUT: args.partitions})
        took = produce(bootstrap, INPUT, stream)
        print(
            f"produced to {INPUT} ({args.partitions} partitions) on Tansu at {bootstrap}: {n / took:,.0f}/s", flush=True
        )
        del stream
        for name in chosen:
            if name not in ("raw", "alo", "eos"):  # the worker creates its own outputs on assignment
                create_topics(bootstrap, {f"bench.{name}.{s}": args.partitions for s in STREAMS})
        skipped: set[str] = set()
        for round_no in range(max(1, args.repeat)):
            k = round_no % len(chosen)
            for name in chosen[k:] + chosen[:k]:
                if name in skipped:
                    continue
                try:
                    run = CONTENDERS[name](bootstrap, n, f"bench.{name}.")
                except ImportError as exc:
                    print(f"{name}: skipped ({exc})", flush=True)
                    skipped.add(name)
                    continue
                runs[name].append(run)
                shutdown = run.extra.get("shutdown_s")
                print(
                    f"[round {round_no + 1}] {name}: {run.events} events in {run.seconds:.2f}s = {run.rate:,.0f}/s"
                    f" (join {run.join_seconds:.1f}s"
                    + (f", shutdown {shutdown:.1f}s" if shutdown is not None else "")
                    + ")",
                    flush=True,
                )
                if run.events < n:
                    print(f"  WARNING: {name} processed only {run.events} of {n}", flush=True)
    print()
    print(
        f"{n} events, {args.partitions} partitions, one Tansu broker, one contender at a time. "
        "Clock: first input in hand -> all N processed, results acked, offsets/transaction committed "
        "(group join and shutdown excluded)."
    )
    print(_table(runs))
    print(f"total wall time {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
