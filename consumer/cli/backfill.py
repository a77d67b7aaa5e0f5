"""`activity-consumer backfill`: Voucherify's activity history onto the input topic, resumably.

Exit 0 when done or stopped by SIGTERM/SIGINT (the page in hand is finished and saved first;
the same command line resumes), 1 when the API or the broker failed for good (progress is
saved: rerunning resumes), 2 for bad settings or credentials.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TextIO

from confluent_kafka import KafkaException, Producer

from consumer.cli import _clients
from consumer.config import BackfillSettings, ConfigError, add_flags, build


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "backfill",
        help="history from Voucherify's REST API -> the input topic (resumable, rate-limited)",
        description=__doc__.split("\n\n", 1)[0] + " Credentials: VOUCHERIFY_APP_ID and VOUCHERIFY_APP_TOKEN.",
    )
    add_flags(p, cls=BackfillSettings)
    p.add_argument("--dry-run", action="store_true", help="page the API and count what would be sent; write nothing")


def run(args: argparse.Namespace, err: TextIO | None = None) -> int:
    err = err or sys.stderr
    from consumer.ingest.backfill import Backfill
    from consumer.ingest.page_sender import PageNotDelivered, PageSender
    from consumer.ingest.progress import ProgressError, ProgressFile
    from consumer.ingest.report import ProgressLine, summary
    from consumer.ingest.voucherify_api import ApiError, AuthError, Credentials, RequestBudget, VoucherifyClient
    from consumer.telemetry import logs

    try:
        settings: BackfillSettings = build(vars(args), cls=BackfillSettings)
        credentials = Credentials.from_env()
    except (ConfigError, AuthError) as exc:
        err.write(f"error: {exc}\n")
        return 2
    logs.configure(settings.log_format, settings.log_level, stream=err)
    log = logs.get("consumer.backfill")
    stop = threading.Event()
    client = VoucherifyClient(
        settings.api_url,
        credentials,
        budget=RequestBudget(settings.max_requests_per_minute),
        timeout_s=settings.request_timeout_seconds,
        max_attempts=settings.max_attempts,
        stop=stop,
        on_wait=lambda why, s: log.info("waiting", reason=why, seconds=round(s, 1)),
    )
    sender = None
    if not args.dry_run:
        config = _clients.writer_config(settings.bootstrap_servers)
        sender = PageSender(lambda: Producer(config), str(settings.topic), stop)
    started = time.monotonic()
    try:
        backfill = Backfill(
            settings,
            client,
            sender,
            ProgressFile(Path(settings.progress_file), read_only=args.dry_run),
            ProgressLine(err),
            stop=stop,
        )
    except ProgressError as exc:
        err.write(f"error: {exc}\n")
        return 2
    previous = _on_stop_signals(stop)
    code, complete = 0, False
    try:
        complete = backfill.run()
    except AuthError as exc:
        err.write(f"error: {exc}\n")
        return 2
    except (ApiError, PageNotDelivered) as exc:
        err.write(f"error: {exc}\n")
        code = 1
    except KafkaException as exc:
        err.write(f"error: Kafka at {settings.bootstrap_servers}: {exc.args[0].str() if exc.args else exc}\n")
        code = 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if sender is not None:
            sender.close()
    tally = backfill.tally
    err.write(
        summary(tally, client.stats, dry_run=args.dry_run, elapsed_s=time.monotonic() - started, complete=complete)
        + "\n"
    )
    if code == 0 and tally.unencodable:
        code = 1  # nothing lost silently: the Job fails and the log names each activity left out
    return code


def _on_stop_signals(stop: threading.Event) -> dict[int, signal._HANDLER]:
    def handle(signum: int, _frame: FrameType | None) -> None:
        stop.set()  # the page in hand is finished and saved; no new request goes out

    previous: dict[int, signal._HANDLER] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handle)
    return previous
