"""`dlq replay`: dead letters back to their source topic after a fix.

Each record goes out as it came in (the original key and bytes), with its `dlq-*` diagnosis
dropped and `dlq-replay-count` raised by one; a record already replayed `--max-replays` times
is refused, so a poison pill cannot loop. The position in the dead-letter topic is committed
for the replay's own consumer group after each batch is delivered: a second run replays
nothing new, and a crash replays at most one batch twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import IO, Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from consumer.cli.dlq_read import DeadLetter, DlqError, Filters, Scan, iso
from consumer.contract import (
    DLQ_PREFIX,
    H_DLQ_REPLAY_COUNT,
    H_DLQ_SOURCE_OFFSET,
    H_DLQ_SOURCE_PARTITION,
    H_DLQ_SOURCE_TOPIC,
    H_DLQ_VALUE_OMITTED,
)
from consumer.kafka_io import produce_waiting

DELIVERY_TIMEOUT_S = 60.0


@dataclass
class Tally:
    scanned: int = 0
    replayed: int = 0
    filtered: int = 0  # did not match --reason/--type/--since; passed over
    refused: int = 0  # over --max-replays, no value, or nowhere to send

    def line(self, dry_run: bool) -> str:
        verb = "would replay" if dry_run else "replayed"
        return (
            f"{verb} {self.replayed}, passed over {self.filtered} (filters), refused {self.refused}"
            f" of {self.scanned} scanned"
        )


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per tenth elsewhere (job logs)."""

    WIDTH = 30

    def __init__(self, total: int, out: IO[str], *, tty: bool | None = None) -> None:
        self.total = max(total, 0)
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self._last_tenth = -1
        self._last_draw = 0.0
        self._last_text = ""

    def update(self, done: int, tally: Tally, dry_run: bool, final: bool = False) -> None:
        frac = 1.0 if self.total == 0 else min(done / self.total, 1.0)
        filled = int(frac * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        text = f"replay [{bar}] {done}/{self.total} {frac:4.0%}  {tally.line(dry_run)}"
        if self.tty:
            now = time.monotonic()
            if final or now - self._last_draw >= 0.1:
                self.out.write("\r" + text + ("\n" if final else ""))
                self.out.flush()
                self._last_draw = now
            return
        tenth = int(frac * 10)
        if (final or tenth > self._last_tenth) and text != self._last_text:
            self._last_tenth = tenth
            self._last_text = text
            self.out.write(text + "\n")
            self.out.flush()


def replay_headers(d: DeadLetter) -> list[tuple[str, str | bytes | None]]:
    """The original headers, without the dead-letter diagnosis, with the replay counted."""
    kept: list[tuple[str, str | bytes | None]] = [(k, v) for k, v in d.headers if not k.startswith(DLQ_PREFIX)]
    return [*kept, (H_DLQ_REPLAY_COUNT, str(d.replay_count + 1).encode())]


class _Deliveries:
    def __init__(self) -> None:
        self.pending = 0
        self.errors: list[str] = []

    def ack(self, err: KafkaError | None, msg: Message) -> None:
        self.pending -= 1
        if err is not None:
            self.errors.append(f"{msg.topic()}: {err.str()}")


def replay(
    scan: Scan,
    filters: Filters,
    *,
    producer_config: dict[str, Any] | None,
    to: str | None,
    max_replays: int,
    dry_run: bool,
    out: IO[str],
    err: IO[str],
    tty: bool | None = None,
) -> Tally:
    """Replay what matches; raise `DlqError` when a delivery fails (positions stay where the
    last fully delivered batch left them)."""
    producer = None if dry_run or producer_config is None else Producer(producer_config)
    tally = Tally()
    progress = Progress(scan.total, err, tty=tty)
    done = 0
    progress.update(0, tally, dry_run)
    held: set[int] = set()
    try:
        for batch in scan.batches():
            deliveries = _Deliveries()
            for d in batch:
                if d.partition in held:
                    continue
                if filters.after_until(d):
                    # Later dead letters stay for a later run: stop this partition here, uncommitted.
                    scan.stop(d.partition)
                    held.add(d.partition)
                    continue
                tally.scanned += 1
                done += 1
                if not filters.matches(d):
                    tally.filtered += 1
                    scan.advance(d)
                    continue
                target = to or d.source_topic
                problem = _refusal(d, target, max_replays)
                if problem is not None:
                    tally.refused += 1
                    err.write(f"\nrefused [{d.partition}]@{d.offset} ({d.activity_type}): {problem}\n")
                    scan.advance(d)
                    continue
                assert target is not None
                if dry_run:
                    out.write(
                        f"[{d.partition}]@{d.offset}  {iso(d.failed_at_ms)}  {d.activity_type}  "
                        f"{d.reason_code}  replays {d.replay_count} -> {target}\n"
                    )
                elif producer is not None:
                    _produce(producer, target, d, deliveries)
                tally.replayed += 1
                scan.advance(d)
            if producer is not None:
                _deliver(producer, deliveries)
                offsets = scan.offsets()
                if offsets:
                    scan.consumer.commit(offsets=offsets, asynchronous=False)
            progress.update(done, tally, dry_run)
    finally:
        if producer is not None:
            producer.flush(5)
    progress.update(done, tally, dry_run, final=True)
    return tally


def _refusal(d: DeadLetter, target: str | None, max_replays: int) -> str | None:
    if d.replay_count >= max_replays:
        return f"already replayed {d.replay_count} time(s) (--max-replays {max_replays})"
    if d.value is None:
        where = f"{d.source_topic}[{d.header(H_DLQ_SOURCE_PARTITION)}]@{d.header(H_DLQ_SOURCE_OFFSET)}"
        return f"the dead letter holds no value ({d.header(H_DLQ_VALUE_OMITTED) or 'tombstone'}); original at {where}"
    if not target:
        return f"no {H_DLQ_SOURCE_TOPIC} header: give --to TOPIC"
    return None


def _produce(producer: Producer, topic: str, d: DeadLetter, deliveries: _Deliveries) -> None:
    try:
        produce_waiting(producer, topic, d.value, d.key, replay_headers(d), deliveries.ack)
    except KafkaException as exc:
        raise DlqError(f"cannot replay [{d.partition}]@{d.offset} to {topic}: {exc.args[0].str()}") from None
    deliveries.pending += 1


def _deliver(producer: Producer, deliveries: _Deliveries) -> None:
    left = producer.flush(DELIVERY_TIMEOUT_S)
    if deliveries.errors or left:
        first = deliveries.errors[0] if deliveries.errors else f"{left} still in flight after {DELIVERY_TIMEOUT_S:.0f}s"
        raise DlqError(
            f"{len(deliveries.errors) or left} replayed record(s) not delivered ({first}); "
            "positions were not committed past them, so running again replays them"
        )
