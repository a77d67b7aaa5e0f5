"""The backfill's paging: every customer (or the given ones), then each one's activities,
each page produced, acknowledged and its position saved before the next is asked for.

- Customers: `GET /v1/customers?order=created_at&starting_after=<created_at>` (the created-at
  cursor: `page` stops at 99). Customers created at the very instant a page ended are asked
  for again (the cursor goes back 1 ms) and those already done are passed over, so a tie at a
  page boundary loses nobody; over a page of customers created at one instant are paged with
  `page` within that millisecond. With `--until`, `created_at[before]` leaves out customers who
  did not exist yet.
- Activities: `GET /v1/customers/{id}/activity?limit=100&order=created_at&starting_after_id=`
  with `start_date`/`end_date` from `--since`/`--until`; the next cursor is
  `more_starting_after`. A 404 is a customer deleted since it was listed: skipped, counted.
- An event id this run already sent is not sent again (counted as a duplicate): overlaps seen
  within a run. Across runs and with the gateway, every record carries `activity-id`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from consumer.config import BackfillSettings, iso_instant
from consumer.ingest.page_sender import PageSender
from consumer.ingest.progress import Position, ProgressFile
from consumer.ingest.records import InputRecord, input_record
from consumer.ingest.report import ProgressLine, Tally
from consumer.ingest.voucherify_api import ApiError, NotFound, Stopped, VoucherifyClient
from consumer.ingest.window import AcknowledgedWindow
from consumer.pipeline.codec import AvroCodec, EncodeError
from consumer.telemetry import logs

PAGE_SIZE: Final = 100  # the API's maximum, for both lists
SOURCE: Final = "backfill"
# Event ids remembered to skip repeats within a run (~200 bytes each).
SEEN_WINDOW: Final = 200_000

log = logs.get(__name__)


def run_identity(settings: BackfillSettings) -> dict[str, Any]:
    """What makes two command lines the same backfill (and lets the second resume the first)."""
    return {
        "topic": settings.topic,
        "api_url": settings.api_url.rstrip("/"),
        "since": _api_time(settings.since),
        "until": _api_time(settings.until),
        "customers": list(settings.customer),
    }


class Backfill:
    def __init__(
        self,
        settings: BackfillSettings,
        client: VoucherifyClient,
        sender: PageSender | None,
        store: ProgressFile,
        view: ProgressLine,
        *,
        codec: AvroCodec | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.sender = sender  # None: a dry run
        self.store = store
        self.view = view
        self.codec = codec or AvroCodec()
        self.stop = stop or client.stop
        self.customers = settings.customer
        self.since = _api_time(settings.since)
        self.until = _api_time(settings.until)
        self.position: Position = store.load(run_identity(settings))
        self.tally = Tally(customers_skipped=self.position.customers_done)
        self.total: int | None = len(self.customers) if self.customers else None
        self._seen = AcknowledgedWindow(SEEN_WINDOW)
        self._inflight = self.position.inflight  # the page an earlier run may have sent without saving

    def run(self) -> bool:
        """Page until done (True) or stopped (False); raises ApiError, PageNotDelivered."""
        if self.position.complete:
            log.info("backfill_already_complete", progress_file=str(self.store.path))
            return True
        try:
            if self.customers:
                for customer_id in self.customers:
                    if not self.position.is_done(customer_id):
                        self._customer(customer_id)
            else:
                self._listing()
        except Stopped:
            self._show(final=True)
            return False
        self.position.complete = True
        self.store.save(self.position)
        self._show(final=True)
        return True

    # -- the customer listing

    def _listing(self) -> None:
        strict = False  # True: the customers tied at the cursor are all done; step past them
        while True:
            params = {"limit": str(PAGE_SIZE), "order": "created_at"}
            cursor = self.position.listing_after
            if cursor:
                tied = self.position.boundary_ids and not strict
                params["starting_after"] = _one_ms_before(cursor) if tied else cursor
            if self.until:
                params["created_at[before]"] = self.until
            page = self.client.customers(params)
            customers = _customers(page)
            if self.total is None and isinstance(page.get("total"), int):
                self.total = page["total"]
            fresh = [c for c in customers if not self.position.is_done(str(c["id"]))]
            more = bool(page.get("has_more", len(customers) >= PAGE_SIZE)) and bool(customers)
            if cursor and customers and not fresh and more and not strict:
                # A whole page created at one instant: the time cursor cannot get inside it.
                self._tie_group(cursor)
                strict = True
                continue
            strict = False
            for c in fresh:
                self._customer(str(c["id"]))
            if not more:
                return
            last = str(customers[-1].get("created_at") or "")
            if not last:
                raise ApiError("/v1/customers: a customer without created_at; the cursor cannot move on")
            self.position.next_listing_page(last, [str(c["id"]) for c in customers if c.get("created_at") == last])
            self.store.save(self.position)

    def _tie_group(self, instant: str) -> None:
        """Every customer created at `instant` (over a page of them), by `page` within that
        millisecond (`page` goes up to 99: 9,900 customers an instant)."""
        bounds = {"created_at[after]": _one_ms_before(instant), "created_at[before]": _one_ms_after(instant)}
        for number in range(1, 100):
            params = {"limit": str(PAGE_SIZE), "order": "created_at", "page": str(number), **bounds}
            page = self.client.customers(params)
            customers = _customers(page)
            for c in customers:
                if c.get("created_at") == instant and not self.position.is_done(str(c["id"])):
                    self._customer(str(c["id"]))
            if not page.get("has_more") or not customers:
                return
        log.warning(
            "instant_overfull", at=instant
        )  # over 9,900 customers created at one instant: the rest cannot be listed

    # -- one customer's activities

    def _customer(self, customer_id: str) -> None:
        after = self.position.start_customer(customer_id)
        while True:
            params = {"limit": str(PAGE_SIZE), "order": "created_at"}
            if self.since:
                params["start_date"] = self.since
            if self.until:
                params["end_date"] = self.until
            if after:
                params["starting_after_id"] = after
            try:
                page = self.client.activity(customer_id, params)
            except NotFound:
                self.tally.deleted += 1
                log.info("customer_not_found", customer_id=customer_id)  # deleted since listed: skipped
                break
            activities = _items(page, "data")
            self._send_page(customer_id, after, activities)
            more = bool(page.get("has_more")) and bool(activities)
            if not more:
                break
            cursor = str(page.get("more_starting_after") or activities[-1].get("id") or "")
            if not cursor or cursor == after:
                raise ApiError(f"/v1/customers/{customer_id}/activity: has_more without a new cursor ({cursor!r})")
            after = cursor
            self.position.after = after
            self.store.save(self.position)
            self._show()
            if self.stop.is_set():
                raise Stopped
        self.position.finish_customer(customer_id)
        self.tally.customers += 1
        self.store.save(self.position)
        self._show()
        if self.stop.is_set():
            raise Stopped

    def _send_page(self, customer_id: str, after: str | None, activities: Sequence[dict[str, Any]]) -> None:
        records: list[InputRecord] = []
        ids: list[str] = []
        types: list[str] = []
        for a in activities:
            if not isinstance(a, dict):
                self.tally.unencodable += 1
                log.warning("activity_not_an_object", customer_id=customer_id)  # not sent
                continue
            activity_id = a.get("id")
            if isinstance(activity_id, str) and activity_id in self._seen:
                self.tally.duplicates += 1
                continue
            try:
                records.append(input_record(self.codec, a, source=SOURCE))
            except (EncodeError, KeyError, TypeError) as exc:
                self.tally.unencodable += 1
                log.warning(
                    "activity_not_encodable",  # not sent
                    activity_id=activity_id,
                    activity_type=a.get("type"),
                    customer_id=customer_id,
                    error=str(exc),
                )
                continue
            ids.append(str(activity_id))
            types.append(str(a["type"]))
        inflight = self._inflight
        if inflight and inflight.get("customer") == customer_id and inflight.get("after") == after:
            self.tally.resent += len(set(ids) & set(inflight.get("ids", ())))
            self._inflight = None
        if self.sender is not None and records:
            self.position.inflight = {"customer": customer_id, "after": after, "ids": ids}
            self.store.save(self.position)
            self.sender.send(records)  # returns once the broker acked every record
            self.position.inflight = None
        for activity_id in ids:
            self._seen.add(activity_id)
        self.tally.sent += len(ids)
        self.tally.by_type.update(types)
        self.position.activities_sent += len(ids)

    def _show(self, final: bool = False) -> None:
        self.view.update(self.position.customers_done, self.total, self.tally, self.client.stats, final=final)


def _items(page: dict[str, Any], key: str) -> list[Any]:
    items = page.get(key)
    if page.get("object") != "list" or not isinstance(items, list):
        raise ApiError(f"expected a list of {key!r}, got an object with keys {sorted(page)[:8]}")
    return items


def _customers(page: dict[str, Any]) -> list[dict[str, Any]]:
    customers = _items(page, "customers")
    if not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in customers):
        raise ApiError("/v1/customers: a customer without an id; cannot page its activity")
    return customers


def _api_time(raw: str | None) -> str | None:
    return None if raw is None else _format(iso_instant(raw))


def _format(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _one_ms_before(created_at: str) -> str:
    return _format(iso_instant(created_at) - timedelta(milliseconds=1))


def _one_ms_after(created_at: str) -> str:
    return _format(iso_instant(created_at) + timedelta(milliseconds=1))
