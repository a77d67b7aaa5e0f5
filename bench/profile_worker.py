"""Where `Worker.process` spends its time, on real messages fetched from a local Tansu broker.

    python -m bench.profile_worker [--events 10000] [--partitions 4] [--guarantee at-least-once]
                                   [--top 25] [--pyinstrument]

1. Starts one Tansu broker, writes N events of the corpus mix, and reads them back into
   memory as real `confluent_kafka.Message` objects.
2. Times each stage of the per-event path on its own, without a profiler (a profiler
   inflates pure-Python code far more than C code such as fastavro and librdkafka).
3. Runs `Worker.process` batch by batch (500) under cProfile; the producer's flush between
   batches, which waits on the network, is kept out of the profile. Prints the top functions
   by cumulative and by own time, and a breakdown of process() by pipeline stage.
   With --pyinstrument, a pyinstrument call tree of the same work follows.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Message, Producer
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import expand_schema

from bench.stream import build_stream, prefetch, produce
from consumer.config import Settings
from consumer.contract import H_ACTIVITY_ID, H_ACTIVITY_TYPE, H_AVRO_SCHEMA
from consumer.devtools.embedded_broker import EmbeddedBroker, create_topics
from consumer.model import activity_from_record
from consumer.pipeline.codec import AvroCodec, SchemaStore
from consumer.pipeline.codec.engines import CavroDecoder, _framed, cavro_module
from consumer.pipeline.codec.results import ResultEncoder
from consumer.pipeline.router import Router
from consumer.runtime.worker import Worker
from consumer.telemetry import logs
from consumer.telemetry.kafka_logs import routed
from consumer.telemetry.metrics import PipelineMetrics, new_registry

INPUT = "customer-activity"
BATCH = 500


def _batches(msgs: list[Message], size: int = BATCH) -> list[list[Message]]:
    return [msgs[i : i + size] for i in range(0, len(msgs), size)]


def _timed(label: str, n: int, fn: Callable[[], Any], rows: dict[str, list[float]], order: list[str]) -> Any:
    started = time.perf_counter()
    out = fn()
    if label not in rows:
        rows[label] = []
        order.append(label)
    rows[label].append(time.perf_counter() - started)
    return out


def stage_timings(bootstrap: str, msgs: list[Message], worker: Worker, repeat: int) -> None:
    """Each stage alone over all messages, no profiler, `repeat` rounds: best µs per event.

    The best of several rounds, because this 2-core VM shows up to 1.7x swings between
    identical rounds (main-thread CPU time swings too, so it is not just waiting on other threads).
    """
    rows: dict[str, list[float]] = {}
    order: list[str] = []
    n = len(msgs)
    codec = AvroCodec()
    router = Router()
    encoder = ResultEncoder(SchemaStore())
    values = [m.value() for m in msgs]
    producer = Producer(
        routed(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 500_000,
            }
        )
    )
    topic = "bench.profile.produce"
    create_topics(bootstrap, {topic: 4})
    metrics = PipelineMetrics(new_registry())

    def ack(_err: Any, _msg: Any) -> None:
        pass

    def one_round() -> None:
        records = _timed(
            f"{codec.engine} full decode (AvroCodec.decode)", n, lambda: [codec.decode(v) for v in values], rows, order
        )
        acts = _timed("activity_from_record", n, lambda: [activity_from_record(r) for r in records], rows, order)
        results = _timed("Router.route (handlers)", n, lambda: [router.route(a) for a in acts], rows, order)
        flat = [r for rs in results for r in rs]
        encoded = _timed(
            f"ResultEncoder.encode ({len(flat) / n:.2f} results/event)",
            n,
            lambda: [encoder.encode(r.schema, r.value) for r in flat],
            rows,
            order,
        )
        owners = [a for a, rs in zip(acts, results, strict=True) for _ in rs]

        def produce_all() -> None:
            for a, r, value in zip(owners, flat, encoded, strict=True):
                headers = [
                    (H_ACTIVITY_ID, a.id.encode()),
                    (H_ACTIVITY_TYPE, a.type.encode()),
                    (H_AVRO_SCHEMA, r.schema.encode()),
                ]
                producer.produce(topic, value, r.key, headers=headers, on_delivery=ack)

        _timed("Producer.produce hand-off (headers + delivery callback)", n, produce_all, rows, order)
        _timed("  ... then flush() (network wait + delivery callbacks)", n, lambda: producer.flush(30), rows, order)

        def pipeline_metrics() -> None:
            # the two observations process() makes per event (its counters are added per batch)
            now = time.time()
            for a in acts:
                metrics.handler_duration.labels(a.family).observe(0.00001)
                metrics.event_age.observe(now - a.created_at_ms / 1000)

        _timed("per-event histograms (handler time, event age)", n, pipeline_metrics, rows, order)
        slices = [flat[i : i + BATCH] for i in range(0, len(flat), BATCH)]  # observed per committed slice
        _timed("BusinessMetrics.observe", n, lambda: [worker.business.observe(s) for s in slices], rows, order)

    def levers() -> None:
        """Cheaper decodes, for comparison (not what the worker does today)."""
        writer = codec.current.parsed
        full = expand_schema(codec.current.raw)
        envelope_only = parse_schema({**full, "fields": [f for f in full["fields"] if f["name"] != "data"]})

        def read(reader: Any, **kw: Any) -> Callable[[], None]:
            def run() -> None:
                for v in values:
                    buf = io.BytesIO(v)
                    buf.seek(10)
                    schemaless_reader(buf, writer, reader, **kw)

            return run

        _timed(
            "lever: bare schemaless_reader, as the codec calls it",
            n,
            read(None, return_record_name=True, return_record_name_override=True),
            rows,
            order,
        )
        _timed("lever: ... without return_record_name", n, read(None), rows, order)
        _timed("lever: ... reader schema without `data` (skips it)", n, read(envelope_only), rows, order)
        # The most any decode projection (a reader schema keeping only what handlers read) can
        # save with cavro: every data record read as one with no fields.
        cavro = cavro_module()
        if cavro is not None:
            options = cavro.DEFAULT_OPTIONS.replace(record_decodes_to_dict=True)
            writer_c = cavro.Schema(_framed(codec.current.raw), options)
            reader_c = cavro.Schema(_framed(_without_data_fields(codec.current.raw)), options)
            emptied = CavroDecoder(reader_c.reader_for_writer(writer_c))
            full_cavro = CavroDecoder(writer_c)
            _timed(
                "lever: cavro, the codec's reader", n, lambda: [full_cavro.decode(v, 10) for v in values], rows, order
            )
            _timed(
                "lever: cavro, data records emptied (any projection's bound)",
                n,
                lambda: [emptied.decode(v, 10) for v in values],
                rows,
                order,
            )

    def whole() -> None:
        for b in _batches(msgs):
            worker.process(b)
            worker.sink.producer.poll(0)

    for _ in range(repeat):
        one_round()  # its intermediate lists are freed before process() runs
        levers()
        _timed("Worker.process, whole batches (flush excluded)", n, whole, rows, order)
        worker.sink.flush(30)

    print(f"\n== Stage timings without a profiler ({n} events, one thread, best of {repeat}) ==")
    print(f"{'stage':<66} {'µs/event':>9} {'events/s':>10} {'worst/best':>10}")
    print("(lever rows are alternatives for comparison, not in the sum)")
    total_parts = 0.0
    for label in order:
        secs = min(rows[label])
        per = secs / n * 1e6
        print(f"{label:<66} {per:>9.1f} {n / secs:>10,.0f} {max(rows[label]) / secs:>10.2f}")
        if not label.startswith(("  ...", "Worker.process", "lever")):
            total_parts += secs
    whole_s = min(rows[order[-1]])
    print(
        f"{'sum of the stages above (excl. flush)':<66} {total_parts / n * 1e6:>9.1f} {n / total_parts:>10,.0f}\n"
        f"process() minus the stages: {(whole_s - total_parts) / n * 1e6:.1f} µs/event "
        f"({(whole_s - total_parts) / whole_s:.0%} of process(): tickets, label lookups, Counters, loop glue)"
    )


def _without_data_fields(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope with each data branch as a record of no fields; every named type the rest
    of the envelope uses is still defined where first used."""
    defs: dict[str, dict[str, Any]] = {}

    def collect(t: Any) -> None:
        if isinstance(t, list):
            for b in t:
                collect(b)
        elif isinstance(t, dict):
            if t.get("type") in ("record", "enum", "fixed"):
                defs[t["name"].rsplit(".", 1)[-1]] = t
                for f in t.get("fields", ()):
                    collect(f["type"])
            collect(t.get("items"))
            collect(t.get("values"))

    collect(envelope)
    done: set[str] = set()

    def walk(t: Any, empty: bool = False) -> Any:
        if isinstance(t, list):
            return [walk(b, empty) for b in t]
        if isinstance(t, str):
            short = t.rsplit(".", 1)[-1]
            return walk(defs[short], empty) if short in defs and short not in done else t
        if t.get("type") in ("record", "enum", "fixed"):
            short = t["name"].rsplit(".", 1)[-1]
            if short in done:
                return f"{t['namespace']}.{t['name']}" if t.get("namespace") else t["name"]
            done.add(short)
            if t["type"] != "record":
                return t
            return {**t, "fields": [] if empty else [{**f, "type": walk(f["type"])} for f in t["fields"]]}
        if t.get("type") == "array":
            return {**t, "items": walk(t["items"])}
        if t.get("type") == "map":
            return {**t, "values": walk(t["values"])}
        return t

    fields = [{**f, "type": walk(f["type"], empty=f["name"] == "data")} for f in envelope["fields"]]
    done.add(envelope["name"])
    return {**envelope, "fields": fields}


# -- cProfile ---------------------------------------------------------------------------------

Key = tuple[str, int, str]


def _match(stats: dict[Key, Any], path_suffix: str, func: str) -> list[Key]:
    return [k for k in stats if k[0].endswith(path_suffix) and k[2] == func]


def _ct(stats: dict[Key, Any], path_suffix: str, func: str) -> float:
    return sum(stats[k][3] for k in _match(stats, path_suffix, func))


def _builtin_tt(stats: dict[Key, Any], needle: str) -> float:
    return sum(v[2] for k, v in stats.items() if k[0] == "~" and needle in k[2])


def breakdown(prof: cProfile.Profile) -> None:
    st = pstats.Stats(prof)
    stats: dict[Key, Any] = st.stats  # type: ignore[attr-defined]
    total = _ct(stats, "consumer/runtime/worker.py", "process")
    if total <= 0:  # a renamed module or function: say so rather than print nothing
        print("\n== Breakdown: no consumer/runtime/worker.py process() frame in the profile ==")
        return
    retrying = _ct(stats, "consumer/pipeline/retrying.py", "route")
    route = _ct(stats, "consumer/pipeline/router.py", "route")
    forward = _ct(stats, "consumer/pipeline/sink.py", "forward")
    enc = _ct(stats, "consumer/pipeline/codec/results.py", "encode")
    prod = _ct(stats, "consumer/pipeline/sink.py", "_produce")
    decode = _ct(stats, "consumer/pipeline/codec/avro_codec.py", "decode")
    reader = _builtin_tt(stats, "schemaless_reader")
    writer = _builtin_tt(stats, "schemaless_writer")
    rdk = _builtin_tt(stats, "of 'cimpl.Producer' objects")
    prom_tt = sum(v[2] for k, v in stats.items() if "prometheus_client" in k[0])
    tallies = _ct(stats, "consumer/telemetry/tallies.py", "batch")
    afr = _ct(stats, "consumer/model.py", "activity_from_record")
    ticket = _ct(stats, "consumer/pipeline/checkpoint.py", "ticket")
    logs_tt = sum(v[2] for k, v in stats.items() if "structlog" in k[0] or k[0].endswith("consumer/telemetry/logs.py"))
    parts = [
        ("decode: AvroCodec.decode (cumulative)", decode),
        (f"   of which fastavro schemaless_reader itself{'' if reader else ' (not visible to cProfile)'}", reader),
        ("activity_from_record (Activity, canonical/family lookups)", afr),
        ("handlers: Router.route (cumulative)", route),
        ("RetryingRouter.route minus route (retry loop, perf_counter, handler histogram)", retrying - route),
        ("Sink.forward (cumulative)", forward),
        ("   of which ResultEncoder.encode", enc),
        (f"      of which fastavro schemaless_writer{'' if writer else ' (not visible to cProfile)'}", writer),
        ("   of which Sink._produce (Producer.produce + headers)", prod),
        ("      of which librdkafka Producer methods (C)", rdk),
        ("Tallies.batch (consumed counters, event-age histogram)", tallies),
        ("checkpoint.ticket", ticket),
        ("prometheus_client, own time of all its functions", prom_tt),
        ("structlog / logs, own time", logs_tt),
    ]
    print(f"\n== Breakdown of Worker.process under cProfile (total {total:.2f}s) ==")
    for label, secs in parts:
        if not secs and "not visible" in label:
            continue
        print(f"{label:<76} {secs:>7.3f}s {secs / total:>6.1%}")
    accounted = decode + afr + retrying + forward + tallies + ticket
    print(
        f"{'process() rest (own loop, Counters, label_of, age list, metric flush)':<76} "
        f"{total - accounted:>7.3f}s {(total - accounted) / total:>6.1%}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--guarantee", choices=("at-least-once", "exactly-once"), default="at-least-once")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=5, help="rounds of the unprofiled stage timings")
    parser.add_argument("--pyinstrument", action="store_true", help="also print a pyinstrument call tree")
    args = parser.parse_args(argv)
    logs.configure("json", "warning", stream=sys.stderr)

    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        create_topics(bootstrap, {INPUT: args.partitions})
        produce(bootstrap, INPUT, build_stream(args.events))
        msgs = prefetch(bootstrap, INPUT, args.events)
        settings = Settings(
            bootstrap_servers=bootstrap,
            topics=(INPUT,),
            group_id=f"bench-profile-{uuid.uuid4().hex[:8]}",
            processing_guarantee=args.guarantee,
            metrics_port=0,
            kafka={"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"},
        ).validate()
        worker = Worker(settings)
        worker.sink.ensure_topics([INPUT])
        batches = _batches(msgs)
        # warm up: first-use costs (schema parsing caches, topic metadata) stay out of the numbers
        worker.process(batches[0])
        worker.sink.flush(30)

        stage_timings(bootstrap, msgs, worker, max(1, args.repeat))

        prof = cProfile.Profile()
        started = time.perf_counter()
        for b in batches:
            prof.enable()
            worker.process(b)
            worker.sink.producer.poll(0)  # serve delivery callbacks (Ticket.ack) as the loop does
            prof.disable()
            worker.sink.flush(30)
        wall = time.perf_counter() - started
        print(
            f"\n== cProfile of Worker.process over {len(msgs)} events ({args.guarantee}); "
            f"{wall:.2f}s wall incl. profiler overhead and out-of-profile flushes =="
        )
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            ps = pstats.Stats(prof, stream=out).strip_dirs().sort_stats(order)
            ps.print_stats(args.top)
            text = out.getvalue()
            body = text[text.find("   ncalls") :] if "   ncalls" in text else text
            print(f"\n-- top {args.top} by {order} --\n{body.rstrip()}")
        breakdown(prof)

        if args.pyinstrument:
            try:
                from pyinstrument import Profiler
            except ImportError:
                print("\npyinstrument is not installed", file=sys.stderr)
            else:
                p = Profiler(interval=0.0005)
                for b in batches:
                    p.start()
                    worker.process(b)
                    worker.sink.producer.poll(0)
                    p.stop()
                    worker.sink.flush(30)
                print(p.output_text(unicode=True, color=False, show_all=False))
        worker.source.close()
        worker.sink.flush(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
