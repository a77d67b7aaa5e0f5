"""The runtime's guard on blocking librdkafka calls: the checkpoint is handed one (a CallGuard)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator

from consumer.telemetry.logs import get as get_logger

log = get_logger("consumer.runtime.watchdog")


class CallWatchdog:
    """Ends the process (exit 1, one log line) when a blocking librdkafka call outlives its timeout.

    Transactions: after a broker restart, librdkafka 2.16's `send_offsets_to_transaction(..., timeout)` was
    seen blocking for minutes (in `rd_kafka_txn_op_req0`, a condition wait without a deadline),
    so the worker neither progressed nor exited. Nothing can interrupt that C call; exiting is
    safe: the open transaction commits nothing, the next instance's `init_transactions` aborts
    it, and the restarted worker reads from the last committed offsets. A synchronous offset
    commit (revoke, shutdown) waits for a coordinator with no deadline when the broker is gone, and
    no signal can stop the worker then: exiting leaves the offsets where they are, so the next
    owner reads what was not committed again. One daemon thread; a call costs two lock round trips.
    """

    def __init__(self, margin_s: float) -> None:
        self.margin = margin_s
        self._cond = threading.Condition()
        self._call: tuple[str, float] | None = None  # (what, deadline); a new tuple per call
        threading.Thread(target=self._watch, name="call-watchdog", daemon=True).start()

    @contextlib.contextmanager
    def guard(self, what: str, timeout_s: float) -> Iterator[None]:
        call = (what, time.monotonic() + timeout_s + self.margin)
        with self._cond:
            self._call = call
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                if self._call is call:
                    self._call = None

    def _watch(self) -> None:
        with self._cond:
            while True:
                call = self._call
                if call is None:
                    self._cond.wait()
                    continue
                left = call[1] - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                if self._call is call:
                    self._expire(call[0])

    def _expire(self, what: str) -> None:
        log.error(
            "kafka_call_stuck",
            call=what,
            action="exit 1: nothing uncommitted is lost; a restarted worker reads it again",
        )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(1)
