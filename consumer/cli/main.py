"""`activity-consumer`: run, produce, demo, codec."""

from __future__ import annotations

import argparse
import sys

from consumer.cli import backfill as backfill_cli
from consumer.cli import dlq as dlq_cli
from consumer.cli import schema as schema_cli
from consumer.cli import tail as tail_cli
from consumer.config import (
    CodecSettings,
    ConfigError,
    DemoSettings,
    GatewaySettings,
    ProduceSettings,
    add_flags,
    build,
)
from consumer.pipeline.codec.registry import connect
from consumer.pipeline.codec.schemas import ContractNotFound


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="activity-consumer", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    # Every command's flags come from the one declaration of its settings in consumer.config.

    run = sub.add_parser("run", help="consume, decode, route and forward (the worker)")
    add_flags(run)

    prod = sub.add_parser("produce", help="JSON Lines activities on stdin -> Avro events on --topic")
    add_flags(prod, cls=ProduceSettings)

    ingest = sub.add_parser("ingest", help="Voucherify's signed webhooks -> Avro events on --topic (the gateway)")
    add_flags(ingest, cls=GatewaySettings)

    demo = sub.add_parser("demo", help="local broker + demo stream + worker, until Ctrl-C")
    add_flags(demo, cls=DemoSettings)

    codec = sub.add_parser("codec", help="JSON Lines <-> base64 framed Avro")
    csub = codec.add_subparsers(dest="codec_command", required=True)
    enc = csub.add_parser("encode", help="JSON activities (one per line) -> base64 framed Avro")
    add_flags(enc, cls=CodecSettings)
    dec = csub.add_parser("decode", help="base64 framed Avro (one per line) -> JSON Lines")
    add_flags(dec, ("schema_registry_url",), cls=CodecSettings)

    schema_cli.add_parser(sub)
    dlq_cli.add_parser(sub)
    tail_cli.add_parser(sub)
    backfill_cli.add_parser(sub)
    return p


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

        try:
            codec_settings = build(vars(args), cls=CodecSettings)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        codec = AvroCodec(framing=codec_settings.framing, registry=connect(codec_settings.schema_registry_url))
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

        try:
            demo = build(vars(args), cls=DemoSettings)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        logs.configure("console", "error", stream=sys.stderr)  # the live summary is the output
        return run_demo(metrics_port=demo.metrics_port, rate=demo.rate, duration=demo.duration)

    try:
        if args.command == "produce":
            from consumer.cli.produce import produce_lines

            produce = build(vars(args), cls=ProduceSettings)
            logs.configure(produce.log_format, produce.log_level, stream=sys.stderr)
            return produce_lines(produce, sys.stdin, registry=connect(produce.schema_registry_url))
        settings = build(vars(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    from consumer.runtime.process import run

    return run(settings)


if __name__ == "__main__":
    raise SystemExit(main())
