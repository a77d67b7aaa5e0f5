"""`activity-consumer dlq inspect|replay|remap`: the operator's tools for a dead-letter topic."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import IO

from confluent_kafka import Consumer, KafkaException

from consumer.cli import _clients
from consumer.cli.dlq_read import DlqError, Filters, Scan, parse_when
from consumer.config import ConfigError, GatewaySettings, add_flags, gateway_mapping, resolved
from consumer.contract import H_DLQ_REASON_CODE

DEFAULT_REPLAY_GROUP = "activity-consumer-dlq-replay"
DEFAULT_REMAP_GROUP = "activity-consumer-dlq-remap"
# The gateway's own flags (and environment): a remap writes where the gateway would.
REMAP_SETTINGS = ("bootstrap_servers", "topic", "dlq_topic", "project_topics", "framing", "schema_registry_url")
DEFAULT_MAX_REPLAYS = 3


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dlq", help="inspect a dead-letter topic, or replay it after a fix")
    dsub = p.add_subparsers(dest="dlq_command", required=True)

    inspect = dsub.add_parser("inspect", help="counts by reason, source topic, type and hour, and a PII-safe sample")
    _common(inspect)
    inspect.add_argument("--sample", type=int, default=5, metavar="N", help="records to show (default 5)")
    inspect.add_argument("--format", choices=("table", "json"), default="table")
    add_flags(inspect, ("schema_registry_url",))

    replay = dsub.add_parser("replay", help="re-publish dead letters to their source topic (or --to)")
    _common(replay)
    replay.add_argument("--to", metavar="TOPIC", help="send everything here instead of each record's source topic")
    replay.add_argument("--dry-run", action="store_true", help="print what would be replayed; write and commit nothing")
    replay.add_argument(
        "--max-replays",
        type=int,
        default=DEFAULT_MAX_REPLAYS,
        help=f"refuse records already replayed this many times (default {DEFAULT_MAX_REPLAYS})",
    )
    replay.add_argument(
        "--group",
        default=DEFAULT_REPLAY_GROUP,
        help=f"consumer group that keeps the replay's position (default {DEFAULT_REPLAY_GROUP})",
    )

    remap = dsub.add_parser(
        "remap",
        help="the gateway's dead letters through its current mapping: what maps now goes to the input topic",
    )
    add_flags(remap, REMAP_SETTINGS, cls=GatewaySettings)
    remap.add_argument("--dry-run", action="store_true", help="print what would be written; write and commit nothing")
    remap.add_argument(
        "--group",
        default=DEFAULT_REMAP_GROUP,
        help=f"consumer group that keeps the remap's position (default {DEFAULT_REMAP_GROUP})",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topic", required=True, help="the dead-letter topic, e.g. customer-activity.dlq")
    add_flags(p, ("bootstrap_servers",))
    p.add_argument("--reason", action="append", help=f"only this {H_DLQ_REASON_CODE} (repeat or comma-separate)")
    p.add_argument("--type", action="append", help="only this activity type (repeat or comma-separate)")
    p.add_argument("--since", help="dead-lettered at or after: ISO 8601 (UTC unless zoned) or an age (30m, 2h, 1d)")
    p.add_argument("--until", help="dead-lettered at or before: ISO 8601 or an age")


def _listed(values: list[str] | None) -> frozenset[str]:
    return frozenset(v.strip() for item in values or () for v in item.split(",") if v.strip())


def filters_of(args: argparse.Namespace) -> Filters:
    since = parse_when(args.since, "--since") if args.since else None
    until = parse_when(args.until, "--until") if args.until else None
    if since is not None and until is not None and since > until:
        raise DlqError(f"--since {args.since!r} is after --until {args.until!r}")
    return Filters(_listed(args.reason), _listed(args.type), since, until)


def run(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr  # looked up per call: tests swap them
    if args.dlq_command == "remap":
        return _remap(args, out, err)
    try:
        filters = filters_of(args)
        if args.dlq_command == "inspect" and args.sample < 0:
            raise DlqError(f"--sample {args.sample}: must be >= 0")
        if args.dlq_command == "replay" and args.max_replays < 1:
            raise DlqError(f"--max-replays {args.max_replays}: must be >= 1")
    except DlqError as exc:
        err.write(f"error: {exc}\n")
        return 2
    bootstrap = resolved("bootstrap_servers", args.bootstrap_servers)
    replaying = args.dlq_command == "replay"

    def work(scan: Scan) -> int:
        return _replay(args, scan, filters, bootstrap, out, err) if replaying else _inspect(args, scan, filters, out)

    return _scanning(bootstrap, args.group if replaying else None, args.topic, work, err)


def _scanning(bootstrap: str, group: str | None, topic: str, work: Callable[[Scan], int], err: IO[str]) -> int:
    """`work` on a scan of `topic` (from `group`'s committed position when a group is given); a
    DlqError or a Kafka error is one line on `err` and exit 1."""
    consumer = Consumer(_clients.reader_config(bootstrap, group))
    try:
        return work(Scan(consumer, topic, from_committed=group is not None))
    except DlqError as exc:
        err.write(f"error: {exc}\n")
        return 1
    except KafkaException as exc:
        err.write(f"error: Kafka at {bootstrap}: {exc.args[0].str() if exc.args else exc}\n")
        return 1
    finally:
        consumer.close()


def _inspect(args: argparse.Namespace, scan: Scan, filters: Filters, out: IO[str]) -> int:
    from consumer.cli.dlq_inspect import inspect, write_table
    from consumer.pipeline.codec import AvroCodec
    from consumer.pipeline.codec.registry import connect

    codec = AvroCodec(registry=connect(resolved("schema_registry_url", args.schema_registry_url)))
    report = inspect(scan, filters, codec, args.sample)
    if args.format == "json":
        out.write(json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        write_table(report, out)
    return 0


def _replay(args: argparse.Namespace, scan: Scan, filters: Filters, bootstrap: str, out: IO[str], err: IO[str]) -> int:
    from consumer.cli.dlq_replay import replay

    tally = replay(
        scan,
        filters,
        producer_config=None if args.dry_run else _clients.writer_config(bootstrap),
        to=args.to,
        max_replays=args.max_replays,
        dry_run=args.dry_run,
        out=out,
        err=err,
    )
    if tally.filtered and not args.dry_run:
        err.write(
            f"note: {tally.filtered} record(s) outside the filters were passed over for group {args.group!r};"
            " replay them with another --group\n"
        )
    return 0


def _remap(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from consumer.cli.dlq_remap import remap
    from consumer.pipeline.codec import AvroCodec
    from consumer.pipeline.codec.registry import connect

    try:
        settings = gateway_mapping({name: getattr(args, name) for name in REMAP_SETTINGS})
    except ConfigError as exc:
        err.write(f"error: {exc}\n")
        return 2
    bootstrap = settings.bootstrap_servers
    codec = AvroCodec(framing=settings.framing, registry=connect(settings.schema_registry_url))
    config = None if args.dry_run else _clients.writer_config(bootstrap)

    def work(scan: Scan) -> int:
        tally = remap(scan, settings, codec, producer_config=config, out=out)
        err.write(tally.line(args.dry_run) + "\n")
        if tally.unmapped and not args.dry_run:
            err.write(
                f"note: {sum(tally.unmapped.values())} dead letter(s) still do not map; they stay in"
                f" {settings.dead_letter_topic()}, behind group {args.group!r}'s position\n"
            )
        return 0

    return _scanning(bootstrap, args.group, settings.dead_letter_topic(), work, err)
