"""`activity-consumer`: run, produce, demo, codec."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from consumer.cli import backfill as backfill_cli
from consumer.cli import dlq as dlq_cli
from consumer.cli import schema as schema_cli
from consumer.cli import tail as tail_cli
from consumer.config import ConfigError, GatewaySettings, add_flags, build, resolved
from consumer.pipeline.codec.framing import FRAMINGS, Framing
from consumer.pipeline.codec.schemas import ContractNotFound


def _kafka_args(p: argparse.ArgumentParser) -> None:
    add_flags(p, ("bootstrap_servers", "schema_registry_url"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="activity-consumer", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="consume, decode, route and forward (the worker)")
    add_flags(run)  # every setting, from its one declaration in consumer.config

    prod = sub.add_parser("produce", help="JSON Lines activities on stdin -> Avro events on --topic")
    _kafka_args(prod)
    prod.add_argument("--topic", required=True)
    prod.add_argument("--framing", choices=FRAMINGS, default="single-object")

    ingest = sub.add_parser("ingest", help="Voucherify's signed webhooks -> Avro events on --topic (the gateway)")
    add_flags(ingest, cls=GatewaySettings)  # every gateway setting, from its declaration

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
    dlq_cli.add_parser(sub)
    tail_cli.add_parser(sub)
    backfill_cli.add_parser(sub)
    return p


def _registry(url: str | None) -> Any:
    from consumer.pipeline.codec.registry import connect

    return connect(resolved("schema_registry_url", url))


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
    if args.command == "dlq":
        logs.configure("console", "warning", stream=sys.stderr)  # the report is the output
        return dlq_cli.run(args)
    if args.command == "tail":
        logs.configure("console", "warning", stream=sys.stderr)  # the records are the output
        return tail_cli.run(args)
    if args.command == "backfill":
        return backfill_cli.run(args)  # configures its logs (stderr, with the progress line)

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

    if args.command == "ingest":
        try:
            gateway_settings = build(vars(args), cls=GatewaySettings)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        logs.configure(gateway_settings.log_format, gateway_settings.log_level)
        from consumer.ingest.server import run as run_gateway

        return run_gateway(gateway_settings)

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
        settings = build(vars(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    from consumer.runtime.process import run

    return run(settings)


if __name__ == "__main__":
    raise SystemExit(main())
