"""The backfill's operator view: what it counted, a progress line on stderr and the summary."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from consumer.ingest.voucherify_api import ApiStats


@dataclass
class Tally:
    """This run's counts (the progress file keeps the totals across runs)."""

    customers: int = 0  # finished in this run
    customers_skipped: int = 0  # done by an earlier run
    sent: int = 0  # acknowledged by the broker (dry run: would be sent)
    by_type: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0  # an id this run had already sent: skipped (an overlap seen)
    resent: int = 0  # the page in flight when an earlier run stopped: sent again
    unencodable: int = 0  # activities the contract cannot carry: logged and left out
    deleted: int = 0  # customers answered 404: deleted since listed


class ProgressLine:
    """A progress bar with rate and ETA: redrawn in place on a terminal, else one line every
    `every_s` seconds (Job logs)."""

    WIDTH = 30

    def __init__(
        self, out: IO[str], *, tty: bool | None = None, every_s: float = 10.0, clock: Callable[[], float] | None = None
    ) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.every_s = 0.2 if self.tty else every_s
        self._clock = clock or time.monotonic
        self._started = self._clock()
        self._last = float("-inf")

    def update(self, done: int, total: int | None, tally: Tally, stats: ApiStats, *, final: bool = False) -> None:
        now = self._clock()
        if not final and now - self._last < self.every_s:
            return
        self._last = now
        elapsed = max(now - self._started, 1e-9)
        rate = tally.customers / elapsed  # this run's pace: earlier runs' customers are not in it
        known = total is not None and total > 0
        frac = min(done / total, 1.0) if known and total else 0.0
        bar = "#" * int(frac * self.WIDTH) + "." * (self.WIDTH - int(frac * self.WIDTH))
        size = f"{done}/{total} {frac:4.0%}" if known else f"{done}/?"
        left = (total - done) if known and total else 0
        eta = _duration(left / rate) if rate > 0 and known else "?"
        text = (
            f"backfill [{bar}] {size} customers  {rate * 60:.1f}/min  ETA {eta}  "
            f"{tally.sent} activities  {stats.requests} requests  {stats.throttled} x 429"
        )
        if self.tty:
            self.out.write("\r" + text + ("\n" if final else ""))
        else:
            self.out.write(text + "\n")
        self.out.flush()


def summary(tally: Tally, stats: ApiStats, *, dry_run: bool, elapsed_s: float, complete: bool) -> str:
    verb = "that would be sent" if dry_run else "sent (acknowledged)"
    types = ", ".join(f"{t} {n}" for t, n in sorted(tally.by_type.items(), key=lambda kv: (-kv[1], kv[0])))
    lines = [
        f"backfill {'complete' if complete else 'stopped; run the same command again to resume'}"
        f" in {_duration(elapsed_s)}{' (dry run: nothing written)' if dry_run else ''}",
        f"  customers: {tally.customers} done this run, {tally.customers_skipped} done before,"
        f" {tally.deleted} deleted (404, skipped)",
        f"  activities {verb}: {tally.sent}" + (f" ({types})" if types else ""),
        f"  requests: {stats.requests}, 429s waited: {stats.throttled} ({stats.throttled_s:.1f}s),"
        f" retried (5xx/network): {stats.retried}",
        f"  duplicates skipped: {tally.duplicates}; re-sent from an interrupted page: {tally.resent}",
    ]
    if tally.unencodable:
        lines.append(f"  NOT sent: {tally.unencodable} activities the contract cannot carry (ids in the log)")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
