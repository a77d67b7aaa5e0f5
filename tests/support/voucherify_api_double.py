"""A local double of Voucherify's REST API for the backfill's tests, over real HTTP.

It speaks the paths, parameters and answers of Voucherify's public API reference:
- `GET /v1/customers`: `limit` 1..100, `order` created_at|-created_at, `starting_after` (a
  created-at cursor: strictly after), `created_at[before]`/`created_at[after]`; `page` above 99
  is refused as the real API does; answers `{"object":"list","data_ref":"customers",
  "customers":[…],"total":…,"has_more":…}`;
- `GET /v1/customers/{id}/activity`: `limit` 1..100, `order`, `starting_after_id`,
  `start_date`/`end_date`; answers `{"object":"list","data_ref":"data","data":[…],
  "has_more":…,"more_starting_after":…}`; 404 for an unknown or deleted customer;
- `X-App-Id`/`X-App-Token` checked (401 otherwise);
- its own budget: over `limit` requests in `window_s`, a 429 with `Retry-After`,
  `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and `X-Rate-Limit-Retry` (epoch seconds);
- injected 5xx answers;
- every request recorded with its time, so a test measures the client's pace.

Activities are built from the corpus payloads (``consumer.devtools.corpus.EXAMPLES``), made to
belong to their customer.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from consumer.devtools.corpus import EXAMPLES

APP_ID = "4ad3f0c1-test-app"
APP_TOKEN = "sk-test-9f8e7d6c5b4a-never-logged"
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_iso(raw: str) -> datetime:
    when = datetime.fromisoformat(raw)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def corpus() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]


@dataclass(frozen=True)
class Seen:
    t: float  # time.monotonic() when the request arrived
    path: str
    params: dict[str, str]
    status: int


@dataclass
class Project:
    """Customers (ordered by created_at) and each one's activities (ordered by created_at)."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    activities: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)  # listed, but 404 on /activity

    def all_activities(self) -> list[dict[str, Any]]:
        return [a for c in self.customers if c["id"] not in self.deleted for a in self.activities[c["id"]]]


def make_project(counts: list[int], *, deleted: tuple[int, ...] = (), ties_every: int = 0, seed: str = "p") -> Project:
    """A customer per entry of `counts`, with that many activities cycling through the corpus.

    `ties_every` > 0: runs of that many customers share one created_at (page-boundary ties).
    """
    templates = corpus()
    project = Project()
    k = 0
    for i, n in enumerate(counts):
        cid = f"cust_{seed}{i:05d}"
        step = i // ties_every if ties_every else i
        created = BASE_TIME + timedelta(seconds=step)
        project.customers.append(
            {
                "id": cid,
                "object": "customer",
                "source_id": f"src-{seed}-{i}",
                "name": f"Person {i}",
                "email": f"person{i}@example.com",
                "created_at": iso(created),
            }
        )
        acts = []
        for j in range(n):
            a = copy.deepcopy(templates[k % len(templates)])
            k += 1
            a["id"] = f"evcus_{seed}{i:05d}x{j:05d}"
            a["created_at"] = iso(created + timedelta(days=1, minutes=j))
            data = a.get("data")
            if isinstance(data, dict) and isinstance(data.get("customer"), dict):
                data["customer"]["id"] = cid
            acts.append(a)
        project.activities[cid] = acts
        if i in deleted:
            project.deleted.add(cid)
    return project


class VoucherifyApiDouble:
    def __init__(
        self,
        project: Project,
        *,
        limit: int | None = None,
        window_s: float = 60.0,
        app_id: str = APP_ID,
        app_token: str = APP_TOKEN,
    ) -> None:
        self.project = project
        self.limit = limit
        self.window_s = window_s
        self.app_id, self.app_token = app_id, app_token
        self.seen: list[Seen] = []
        self.failures: deque[int] = deque()  # statuses to answer next, whatever is asked
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> VoucherifyApiDouble:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, *statuses: int) -> None:
        with self._lock:
            self.failures.extend(statuses)

    def count(self, status: int | None = None, path_part: str = "") -> int:
        with self._lock:
            return sum(1 for s in self.seen if (status is None or s.status == status) and path_part in s.path)

    def max_in_window(self, window_s: float) -> int:
        """The most requests that arrived within any `window_s` seconds."""
        times = sorted(s.t for s in self.seen)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window_s:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    # -- the answers

    def answer(self, path: str, params: dict[str, str], headers: Any) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            now = time.monotonic()
            if self.limit is not None:
                while self._recent and now - self._recent[0] >= self.window_s:
                    self._recent.popleft()
                if len(self._recent) >= self.limit:
                    retry_in = self.window_s - (now - self._recent[0])
                    self._recent.append(now)
                    return self._throttled(retry_in)
                self._recent.append(now)
            if self.failures:
                status = self.failures.popleft()
                return status, {}, {"code": status, "message": "injected failure"}
        if headers.get("X-App-Id") != self.app_id or headers.get("X-App-Token") != self.app_token:
            return 401, {}, {"code": 401, "key": "unauthorized", "message": "Unauthorized"}
        parts = path.strip("/").split("/")
        if parts == ["v1", "customers"]:
            return self._customers(params)
        if len(parts) == 4 and parts[:2] == ["v1", "customers"] and parts[3] == "activity":
            return self._activity(urllib.parse.unquote(parts[2]), params)
        return 404, {}, {"code": 404, "key": "not_found", "message": "Resource not found"}

    def _throttled(self, retry_in: float) -> tuple[int, dict[str, str], Any]:
        wait = max(1, math.ceil(retry_in))
        headers = {
            "Retry-After": str(wait),
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": "0",
            "X-Rate-Limit-Retry": str(math.ceil(time.time() + retry_in)),
        }
        return 429, headers, {"code": 429, "key": "too_many_requests", "message": "Too many requests"}

    def _limit(self, params: dict[str, str]) -> int | None:
        raw = params.get("limit", "10")
        return int(raw) if raw.isdigit() and 1 <= int(raw) <= 100 else None

    def _customers(self, params: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        limit = self._limit(params)
        if limit is None or int(params.get("page", "1")) > 99:
            return 400, {}, {"code": 400, "key": "invalid_query_params", "message": "limit 1..100, page up to 99"}
        rows = list(self.project.customers)
        if "created_at[before]" in params:
            rows = [c for c in rows if parse_iso(c["created_at"]) < parse_iso(params["created_at[before]"])]
        if "created_at[after]" in params:
            rows = [c for c in rows if parse_iso(c["created_at"]) > parse_iso(params["created_at[after]"])]
        total = len(rows)
        descending = params.get("order", "-created_at") == "-created_at"
        rows.sort(key=lambda c: (c["created_at"], c["id"]), reverse=descending)
        if "starting_after" in params:
            cursor = parse_iso(params["starting_after"])
            rows = [c for c in rows if (parse_iso(c["created_at"]) < cursor) == descending]
            rows = [c for c in rows if parse_iso(c["created_at"]) != cursor]
        first = (int(params.get("page", "1")) - 1) * limit  # `page` pages within the filters
        page = rows[first : first + limit]
        return (
            200,
            {},
            {
                "object": "list",
                "data_ref": "customers",
                "customers": page,
                "total": total,
                "has_more": len(rows) > first + limit,
            },
        )

    def _activity(self, customer_id: str, params: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if customer_id not in self.project.activities or customer_id in self.project.deleted:
            return 404, {}, {"code": 404, "key": "not_found", "message": "Resource not found",
                             "details": f"Cannot find customer with id {customer_id}"}  # fmt: skip
        limit = self._limit(params)
        if limit is None:
            return 400, {}, {"code": 400, "key": "invalid_query_params", "message": "limit must be 1..100"}
        rows = list(self.project.activities[customer_id])
        if params.get("order", "-created_at") == "-created_at":
            rows.reverse()
        if "start_date" in params:
            rows = [a for a in rows if parse_iso(a["created_at"]) >= parse_iso(params["start_date"])]
        if "end_date" in params:
            rows = [a for a in rows if parse_iso(a["created_at"]) < parse_iso(params["end_date"])]
        if "starting_after_id" in params:
            ids = [a["id"] for a in rows]
            if params["starting_after_id"] not in ids:
                return 400, {}, {"code": 400, "key": "invalid_cursor", "message": "unknown starting_after_id"}
            rows = rows[ids.index(params["starting_after_id"]) + 1 :]
        page = rows[:limit]
        more = len(rows) > limit
        return (
            200,
            {},
            {
                "object": "list",
                "data_ref": "data",
                "data": page,
                "has_more": more,
                "more_starting_after": page[-1]["id"] if more else None,
            },
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(url.query))
                arrived = time.monotonic()
                status, headers, body = double.answer(url.path, params, self.headers)
                with double._lock:
                    double.seen.append(Seen(arrived, url.path, params, status))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: Any) -> None:
                pass

        return Handler


def backfill_args(api: VoucherifyApiDouble, progress_file: Path, topic: str, *extra: str) -> list[str]:
    """`activity-consumer backfill` arguments against this double (after the program name)."""
    return [
        "backfill",
        "--topic",
        topic,
        "--api-url",
        api.url,
        "--progress-file",
        str(progress_file),
        "--log-format",
        "json",
        *extra,
    ]


def credentials_env() -> dict[str, str]:
    return {"VOUCHERIFY_APP_ID": APP_ID, "VOUCHERIFY_APP_TOKEN": APP_TOKEN}
