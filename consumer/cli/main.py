"""`activity-consumer`: run, produce, demo, codec."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from consumer.cli import schema as schema_cli
from consumer.config import GUARANTEES, ConfigError, Settings, build
from consumer.pipeline.codec.framing import FRAMINGS, Framing
from consumer.pipeline.codec.schemas import ContractNotFound


def _kafka_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap-servers", help="env KAFKA_BOOTSTRAP_SERVERS (default localhost:9092)")
    p.add_argument("--schema-registry-url", help="env SCHEMA_REGISTRY_URL; needed for Confluent framing")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="activity-consumer", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="consume, decode, route and forward (the worker)")
    _kafka_args(run)
    src = run.add_mutually_exclusive_group()
    src.add_argument("--topics", help="comma-separated input topics (env ACTIVITY_TOPICS)")
    src.add_argument("--pattern", help="input topic regex, e.g. '^customer-activity\\..*' (env ACTIVITY_PATTERN)")
    run.add_argument("--group-id", help="consumer group (env ACTIVITY_GROUP_ID)")
    run.add_argument("--processing-guarantee", choices=GUARANTEES, help="env ACTIVITY_PROCESSING_GUARANTEE")
    run.add_argument("--output-prefix", help="downstream topic prefix (default '<input topic>.')")
    run.add_argument("--dlq-topic", help="dead-letter topic (default '<input topic>.dlq')")
    run.add_argument("--metrics-port", type=int, help="HTTP port for /metrics /healthz /readyz; 0 = off")
    run.add_argument("--stop-when-idle", type=float, metavar="SECONDS", help="exit after this long idle")
    run.add_argument("--shutdown-grace-seconds", type=float, help="drain deadline on SIGTERM (default 10)")
    run.add_argument("--batch-size", type=int, help="messages per consume() (default 500)")
    run.add_argument("--max-retries", type=int, help="handler retries before dead-lettering (default 3)")
    run.add_argument("--transactional-id", help="exactly-once producer id (default <group>-<host>)")
    run.add_argument("--log-format", choices=("auto", "json", "console"))
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="env ACTIVITY_LOG_LEVEL")
    run.add_argument("--processes", type=int, help="worker processes (one core each), metrics aggregated")

    prod = sub.add_parser("produce", help="JSON Lines activities on stdin -> Avro events on --topic")
    _kafka_args(prod)
    prod.add_argument("--topic", required=True)
    prod.add_argument("--framing", choices=FRAMINGS, default="single-object")

    demo = sub.add_parser("demo", help="local broker + demo stream + worker, until Ctrl-C")
    demo.add_argument("--metrics-port", type=int, default=9400)
    demo.add_argument("--rate", type=float, default=200.0, help="demo events per second")
    demo.add_argument("--duration", type=float, help="stop after this many seconds")

    codec = sub.add_parser("codec", help="JSON Lines <-> base64 framed Avro")
    csub = codec.add_subparsers(dest="codec_command", required=True)
    enc = csub.add_parser("encode", help="JSON activities (one per line) -> base64 framed Avro")
    enc.add_argument("--framing", choices=FRAMINGS, default="single-object")
    enc.add_argument("--schema-registry-url")
    dec = csub.add_parser("decode", help="base64 framed Avro (one per line) -> JSON Lines")
    dec.add_argument("--schema-registry-url")

    schema_cli.add_parser(sub)
    return p


def _registry(url: str | None) -> Any:
    from consumer.pipeline.codec.avro_codec import registry_client

    return registry_client(url or os.environ.get("SCHEMA_REGISTRY_URL"))


def _settings(args: argparse.Namespace) -> Settings:
    cli = {
        name: getattr(args, name, None)
        for name in (
            "bootstrap_servers",
            "pattern",
            "group_id",
            "processing_guarantee",
            "output_prefix",
            "dlq_topic",
            "metrics_port",
            "stop_when_idle",
            "shutdown_grace_seconds",
            "batch_size",
            "max_retries",
            "transactional_id",
            "log_format",
            "log_level",
            "processes",
            "schema_registry_url",
        )
    }
    if getattr(args, "topics", None):
        cli["topics"] = tuple(t.strip() for t in args.topics.split(",") if t.strip())
    return build(cli)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except ContractNotFound as exc:  # a broken install or a wrong ACTIVITY_AVRO_DIR: say so, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    from consumer.telemetry import logs

    if args.command == "schema":
        return schema_cli.run(args)

    if args.command == "codec":
        from consumer.cli.codec_lines import main_decode, main_encode
        from consumer.pipeline.codec import AvroCodec

        registry = _registry(args.schema_registry_url)
        framing: Framing = getattr(args, "framing", "single-object")
        if framing == "confluent" and registry is None:
            print("error: --framing confluent needs --schema-registry-url", file=sys.stderr)
            return 2
        codec = AvroCodec(framing=framing, registry=registry)
        return main_encode(codec) if args.codec_command == "encode" else main_decode(codec)

    if args.command == "demo":
        from consumer.devtools.demo import run_demo

        logs.configure("console", "error", stream=sys.stderr)  # the live summary is the output
        return run_demo(metrics_port=args.metrics_port, rate=args.rate, duration=args.duration)

    try:
        if args.command == "produce":
            from consumer.cli.produce import produce_lines

            settings = build({"bootstrap_servers": args.bootstrap_servers, "topics": (args.topic,)})
            logs.configure(settings.log_format, settings.log_level, stream=sys.stderr)
            return produce_lines(
                settings,
                args.topic,
                sys.stdin,
                framing=args.framing,
                registry=_registry(args.schema_registry_url),
            )
        settings = _settings(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    from consumer.runtime.process import run

    return run(settings)


if __name__ == "__main__":
    raise SystemExit(main())
