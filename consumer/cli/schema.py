"""`activity-consumer schema export [NAME]` and `schema list`: the self-contained schemas a
team registers, or hands to another language's Avro library."""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO

from consumer.contract import ENVELOPE, RESULTS_NAMESPACE, STREAM_SCHEMAS
from consumer.pipeline.codec.schemas import SchemaStore


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schema", help="print the contract's self-contained Avro schemas")
    ssub = p.add_subparsers(dest="schema_command", required=True)
    export = ssub.add_parser("export", help="one schema, every named type inlined (envelope by default)")
    export.add_argument(
        "name",
        nargs="?",
        default=ENVELOPE,
        help="full or short record name, or a result stream (e.g. redemptions); default the envelope",
    )
    ssub.add_parser("list", help="the exportable schemas: the envelope and the result records, with streams")


def exportable(store: SchemaStore) -> list[str]:
    """The envelope, then every result record (avro/results/), by full name."""
    results = sorted(n for n in store.files if n.rpartition(".")[0] == RESULTS_NAMESPACE)
    return [ENVELOPE, *results]


def resolve(store: SchemaStore, name: str) -> str | None:
    """A full name from a full name, a unique short name, or a result stream."""
    if name in store.files:
        return name
    if name in STREAM_SCHEMAS:
        return STREAM_SCHEMAS[name]
    matches = [full for full in store.files if full.rpartition(".")[2] == name]
    return matches[0] if len(matches) == 1 else None


def run(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr  # looked up per call: tests swap them
    store = SchemaStore()
    if args.schema_command == "list":
        streams = {schema: stream for stream, schema in STREAM_SCHEMAS.items()}
        for full in exportable(store):
            out.write(f"{full}\t{streams.get(full, 'envelope' if full == ENVELOPE else '-')}\n")
        return 0
    chosen = resolve(store, args.name)
    if chosen is None:
        err.write(f"error: no schema named {args.name!r}; `activity-consumer schema list` shows the names\n")
        return 2
    out.write(json.dumps(store.expand(chosen), indent=2) + "\n")
    return 0
