"""A backfill's resumable position, in one JSON file on the Job's volume.

A file, not a compacted topic: the backfill is one process, the position is a few kilobytes,
and a file needs no topic (nor ACLs, nor compaction settings) created beforehand. It is
written atomically (temporary file, fsync, `os.replace`, fsync of the folder), so a SIGKILL
leaves the previous position or the new one, never half of one. It is saved after each page
the broker has acknowledged.

What it holds:
- `run`: the command line's identity (topic, API, window, customers); another backfill's
  file is refused rather than resumed;
- the customer listing's cursor: every customer created up to `listing_after` is done, and so
  are `boundary_ids` (those created at exactly that instant) and `done` (in the current page
  of the listing); with `--customer`, `done` holds the given customers finished;
- `customer` and `after`: the customer being paged and the last activity id acknowledged;
- `inflight`: the ids of the page being sent when the file was saved: after a crash that
  page is sent again, and those ids are counted as possible duplicates;
- running totals, so that a resumed run's progress line counts from where it left.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from consumer.errors import ConsumerError

FORMAT = 1


class ProgressError(ConsumerError, ValueError):
    """The progress file cannot be used for this run; the message says why and what to do."""


@dataclass
class Position:
    run: dict[str, Any]
    listing_after: str | None = None
    boundary_ids: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    customer: str | None = None
    after: str | None = None
    inflight: dict[str, Any] | None = None
    customers_done: int = 0
    activities_sent: int = 0
    complete: bool = False

    def is_done(self, customer_id: str) -> bool:
        return customer_id in self.done or customer_id in self.boundary_ids

    def start_customer(self, customer_id: str) -> str | None:
        """The activity cursor to start `customer_id` from: where the last run stopped in it, if it did."""
        if self.customer == customer_id:
            return self.after
        self.customer, self.after = customer_id, None
        return None

    def finish_customer(self, customer_id: str) -> None:
        self.done.append(customer_id)
        self.customer = self.after = None
        self.customers_done += 1

    def next_listing_page(self, cursor: str, ids_at_cursor: list[str]) -> None:
        """Every customer of the listing page just finished is done: move the cursor past it."""
        if cursor == self.listing_after:
            self.boundary_ids = sorted({*self.boundary_ids, *ids_at_cursor})
        else:
            self.boundary_ids = sorted(set(ids_at_cursor))
        self.listing_after = cursor
        self.done = []


class ProgressFile:
    """Load and save a `Position`; `read_only` (a dry run) loads but never writes."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only

    def load(self, run: dict[str, Any]) -> Position:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return Position(run=run)
        except (OSError, ValueError) as exc:
            raise ProgressError(f"cannot read the progress file {self.path}: {exc}") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ProgressError(f"{self.path} is not a backfill progress file (format {FORMAT})")
        if raw.get("run") != run:
            raise ProgressError(
                f"{self.path} holds the progress of another backfill ({_describe(raw.get('run'))}); "
                "run that command line again to resume it, or give another --progress-file"
            )
        raw.pop("format")
        try:
            return Position(**raw)
        except TypeError as exc:
            raise ProgressError(f"{self.path} is damaged: {exc}") from None

    def save(self, position: Position) -> None:
        if self.read_only:
            return
        text = json.dumps({"format": FORMAT, **asdict(position)}, indent=1, sort_keys=True)
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)


def _describe(run: Any) -> str:
    if not isinstance(run, dict):
        return "unknown"
    return ", ".join(f"{k}={v}" for k, v in sorted(run.items()) if v not in (None, [], ""))
