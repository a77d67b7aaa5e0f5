"""One benchmark contender per process, so that its CPU time and peak RSS are its own.

    python -m bench.contenders NAME --bootstrap HOST:PORT --topic T --events N --prefix P

Prints one JSON line (`Measured`). The clock runs from the first input in the contender's
hands to all N events done (results acknowledged, offsets or the transaction committed); the
group join and the shutdown are outside it. CPU seconds are the process' user+system time over
the same span, all threads (librdkafka's included). Peak RSS is the process' VmHWM.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from consumer.config import Settings
from consumer.contract import H_ACTIVITY_ID, H_ACTIVITY_TYPE, H_AVRO_SCHEMA
from consumer.kafka_io import produce_waiting
from consumer.model import activity_from_record
from consumer.pipeline.codec import AvroCodec, SchemaStore
from consumer.pipeline.codec.framing import SINGLE_OBJECT_MAGIC
from consumer.pipeline.codec.results import RESULTS_NAMESPACE, ResultEncoder
from consumer.pipeline.codec.schemas import crc64_fingerprint, parsed
from consumer.pipeline.router import Router
from consumer.runtime.worker import Worker
from consumer.telemetry import logs

BATCH = 500
HEADER = 10  # single-object framing: C3 01 + the 8-byte fingerprint
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
class Measured:
    events: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    results: int = -1
    extra: dict[str, Any] = field(default_factory=dict)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Clock:
    """First input in hand -> done, in wall and CPU seconds."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.cpu0 = 0.0
        self.done: float | None = None
        self.cpu1 = 0.0

    def start(self) -> None:
        if self.first is None:
            self.first, self.cpu0 = time.perf_counter(), _cpu()

    def stop(self) -> None:
        if self.done is None:
            self.done, self.cpu1 = time.perf_counter(), _cpu()

    def measured(self, events: int, results: int = -1, **extra: Any) -> Measured:
        if self.first is None or self.done is None:
            raise RuntimeError("the contender never started or never finished")
        return Measured(events, self.done - self.first, self.cpu1 - self.cpu0, _peak_rss_mb(), results, extra)


def _peak_rss_mb() -> float:
    """This process' RSS high-water mark. Not ru_maxrss: Linux carries that across execve, so a
    child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _consumer(bootstrap: str, topic: str, name: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{name}-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **GROUP_TUNING,
        }
    )
    consumer.subscribe([topic])
    return consumer


def _consume_loop(a: argparse.Namespace, name: str, per_message: Callable[[bytes], Any] | None) -> Measured:
    consumer = _consumer(a.bootstrap, a.topic, name)
    clock = Clock()
    seen = 0
    try:
        while seen < a.events:
            msgs = consumer.consume(BATCH, 0.5)
            if msgs:
                clock.start()
            for m in msgs:
                if m.error() is None:
                    if per_message is not None:
                        per_message(m.value())
                    seen += 1
        clock.stop()
    finally:
        consumer.close()
    return clock.measured(seen)


def raw(a: argparse.Namespace) -> Measured:
    """consume(500) until N records are in hand: no decode, no produce, no commit."""
    return _consume_loop(a, "raw", None)


def decode_ceiling(engine: str) -> Callable[[argparse.Namespace], Measured]:
    """consume(500) + AvroCodec.decode with one engine: what no worker on that engine can beat."""

    def run(a: argparse.Namespace) -> Measured:
        codec = AvroCodec(engine=engine)  # type: ignore[arg-type]
        return _consume_loop(a, f"decode-{engine}", codec.decode)

    return run


def plain(a: argparse.Namespace) -> Measured:
    """consume(500); per event fastavro decode, Router, ResultEncoder, produce (the Sink's producer
    settings and headers); per batch flush + synchronous commit. No metrics, no dead letters."""
    consumer = _consumer(a.bootstrap, a.topic, "plain")
    producer = Producer({"bootstrap.servers": a.bootstrap, **SINK_PRODUCER})
    codec = AvroCodec(engine="fastavro")
    router, encoder = Router(), ResultEncoder(codec.store, engine="fastavro")
    clock = Clock()
    seen = produced = 0
    errors: list[Any] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    try:
        while seen < a.events:
            msgs = consumer.consume(BATCH, 0.5)
            if not msgs:
                continue
            clock.start()
            for m in msgs:
                if m.error() is not None:
                    continue
                activity = activity_from_record(codec.decode(m.value()))
                headers = [(H_ACTIVITY_ID, activity.id.encode()), (H_ACTIVITY_TYPE, activity.type.encode())]
                for r in router.route(activity):
                    value = encoder.encode(r.schema, r.value)
                    produce_waiting(
                        producer,
                        f"{a.prefix}{r.stream}",
                        value,
                        r.key,
                        [*headers, (H_AVRO_SCHEMA, r.schema.encode())],
                        report,
                    )
                    produced += 1
                seen += 1
            producer.flush(30)
            if errors:
                raise RuntimeError(f"plain loop: delivery failed: {errors[0]}")
            consumer.commit(asynchronous=False)
        clock.stop()
    finally:
        consumer.close()
    return clock.measured(seen, produced)


def worker(guarantee: str, engine: str, idle: float = 2) -> Callable[[argparse.Namespace], Measured]:
    """Worker.run in this process, with the project's settings (batch size and all)."""

    def run(a: argparse.Namespace) -> Measured:
        settings = Settings(
            bootstrap_servers=a.bootstrap,
            topics=(a.topic,),
            group_id=f"bench-worker-{uuid.uuid4().hex[:8]}",
            processing_guarantee=guarantee,  # type: ignore[arg-type]
            output_prefix=a.prefix,
            dlq_topic=f"{a.prefix}dlq",
            metrics_port=0,
            stop_when_idle=idle,
            avro_engine=engine,  # type: ignore[arg-type]
            kafka=GROUP_TUNING,
        ).validate()
        w = Worker(settings)
        clock = Clock()
        process, poll = w.process, w.checkpoint.poll

        def timed_process(msgs: list[Any]) -> None:
            clock.start()
            process(msgs)

        def timed_poll(*args: Any, **kw: Any) -> Any:
            out = poll(*args, **kw)
            if w.processed >= a.events and not w.checkpoint.in_flight():
                clock.stop()
                w.stop()  # the clock has stopped: no need to wait for stop_when_idle
            return out

        w.process = timed_process  # type: ignore[method-assign]
        w.checkpoint.poll = timed_poll  # type: ignore[method-assign]
        if w.run() != 0:
            raise RuntimeError(f"worker ({guarantee}, {engine}) failed")
        clock.stop()
        return clock.measured(w.processed, extra={"engine": w.codec.engine, "batch_size": settings.batch_size})

    return run


def quix(native: bool) -> Callable[[argparse.Namespace], Measured]:
    """A Quix Streams Application (at-least-once, its defaults) with the same handlers and results.

    native: Quix's own Avro path, `quixstreams.models.serializers.avro` (fastavro) after stripping
    the single-object header, and its AvroSerializer per result schema with the header put back.
    Otherwise: our AvroCodec (default engine) and ResultEncoder inside Quix's (de)serializer hooks.
    """

    def run(a: argparse.Namespace) -> Measured:
        import logging

        from quixstreams import Application
        from quixstreams import __version__ as quix_version
        from quixstreams.models.serializers import Deserializer, Serializer
        from quixstreams.models.serializers.avro import AvroDeserializer, AvroSerializer

        store = SchemaStore()
        codec, encoder, router = AvroCodec(store), ResultEncoder(store), Router()
        clock = Clock()
        if native:
            inner = AvroDeserializer(schema=store.envelope)
            names = [n for n in store.files if n.startswith(RESULTS_NAMESPACE + ".")]
            headers = {n: SINGLE_OBJECT_MAGIC + crc64_fingerprint(parsed(store.expand(n))) for n in names}
            writers = {n: AvroSerializer(schema=store.expand(n)) for n in names}

            def decode(value: bytes, ctx: Any) -> Any:
                return inner(value[HEADER:], ctx)

            def encode(result: Any, ctx: Any) -> bytes:
                return headers[result.schema] + writers[result.schema](result.value, ctx)
        else:

            def decode(value: bytes, ctx: Any) -> Any:
                return codec.decode(value)

            def encode(result: Any, ctx: Any) -> bytes:
                return encoder.encode(result.schema, result.value)

        class In(Deserializer):
            def __call__(self, value: bytes, ctx: Any) -> Any:
                clock.start()
                return activity_from_record(decode(value, ctx))

        class Out(Serializer):
            def __call__(self, value: Any, ctx: Any) -> bytes:
                return encode(value, ctx)

        processed = 0
        app: Any = None

        def on_processed(_topic: str, _partition: int, _offset: int) -> None:
            nonlocal processed
            processed += 1
            if processed >= a.events:
                app.stop()

        app = Application(
            broker_address=a.bootstrap,
            consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            consumer_extra_config=dict(GROUP_TUNING),
            state_dir=tempfile.mkdtemp(prefix="bench-quix-"),
            use_changelog_topics=False,
            on_message_processed=on_processed,
            loglevel="WARNING",
        )
        logging.getLogger("quixstreams").setLevel(logging.WARNING)
        source = app.topic(a.topic, value_deserializer=In(), key_deserializer="bytes")
        outputs = {s: app.topic(f"{a.prefix}{s}", value_serializer=Out(), key_serializer="str") for s in a.streams}

        def headers_of(value: Any, _key: Any, _ts: Any, _h: Any) -> Any:
            return outputs[value.stream]

        sdf = app.dataframe(source)
        sdf = sdf.apply(router.route, expand=True)
        sdf.to_topic(headers_of, key=lambda r: r.key)
        # The last checkpoint commit (flush + offsets) runs after stop(): the clock stops after it.
        ctx = app._processing_context
        commit = ctx.commit_checkpoint

        def timed_commit(*args: Any, **kw: Any) -> None:
            commit(*args, **kw)
            if kw.get("force") and processed >= a.events:
                clock.stop()

        ctx.commit_checkpoint = timed_commit
        app.run()
        clock.stop()
        return clock.measured(processed, extra={"quix": quix_version})

    return run


CONTENDERS: dict[str, Callable[[argparse.Namespace], Measured]] = {
    "raw": raw,
    "decode-fastavro": decode_ceiling("fastavro"),
    "decode-cavro": decode_ceiling("cavro"),
    "plain": plain,
    "worker-alo-cavro": worker("at-least-once", "cavro"),
    "worker-eos-cavro": worker("exactly-once", "cavro"),
    "worker-alo-fastavro": worker("at-least-once", "fastavro"),
    "worker-eos-fastavro": worker("exactly-once", "fastavro"),
    "quix-native": quix(native=True),
    "quix-ours": quix(native=False),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(CONTENDERS))
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--streams", default="", help="comma list of result streams (output topics exist)")
    a = p.parse_args(argv)
    a.streams = [s for s in a.streams.split(",") if s]
    logs.configure("json", "warning", stream=sys.stderr)
    print(json.dumps(asdict(CONTENDERS[a.name](a))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
