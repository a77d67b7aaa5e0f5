"""Voucherify's REST API, politely: credentials, a request budget, timeouts and retries.

The standard library's urllib is enough here: one request at a time, paced to a budget of at
most a few thousand a minute, so a connection pool or an async client buys nothing, and the
backfill needs no extra dependency in the image.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from consumer.errors import ConsumerError
from consumer.pii import REDACTED, mask_embedded

APP_ID_ENV: Final = "VOUCHERIFY_APP_ID"
APP_TOKEN_ENV: Final = "VOUCHERIFY_APP_TOKEN"
BACKOFF_FIRST_S: Final = 1.0
BACKOFF_CAP_S: Final = 60.0
# A 429 without a usable hint waits this long; a hint beyond the cap is clipped to it.
THROTTLE_DEFAULT_S: Final = 60.0
THROTTLE_CAP_S: Final = 3600.0


class ApiError(ConsumerError):
    """A request that failed for good (after retries), or an answer that is not what the API documents."""


class AuthError(ApiError):
    """401/403: the credentials are wrong or lack access; retrying cannot help."""


class NotFound(ApiError):
    """404: e.g. a customer deleted since it was listed."""


class Stopped(ConsumerError):
    """A stop was asked for while waiting to send a request; nothing was sent."""


@dataclass(frozen=True, slots=True)
class Credentials:
    app_id: str
    app_token: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(app_id={self.app_id!r}, app_token={REDACTED!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if environ is None else environ
        missing = [name for name in (APP_ID_ENV, APP_TOKEN_ENV) if not env.get(name, "").strip()]
        if missing:
            raise AuthError(f"set {' and '.join(missing)} (the project's Application ID and Secret Key)")
        return cls(env[APP_ID_ENV].strip(), env[APP_TOKEN_ENV].strip())


class RequestBudget:
    """At most `per_minute` requests in any minute: a token bucket holding one token, refilled
    every 60/per_minute seconds, so requests are evenly paced and never burst."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 60.0 / per_minute
        self._clock = clock
        self._next = clock()

    def wait_s(self) -> float:
        """How long until the next request may go."""
        return max(0.0, self._next - self._clock())

    def take(self) -> None:
        """Spend the token (call when the request goes)."""
        self._next = max(self._next, self._clock()) + self.interval


@dataclass
class ApiStats:
    requests: int = 0
    throttled: int = 0  # 429s answered, each waited out
    throttled_s: float = 0.0
    retried: int = 0  # 5xx and network errors retried
    not_found: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]


def throttle_wait_s(headers: Mapping[str, str], now: float) -> float:
    """What a 429 says to wait: `Retry-After` (seconds or an HTTP date) or `X-Rate-Limit-Retry`
    (epoch seconds), the longer of the two; `now` is epoch seconds."""
    waits: list[float] = []
    retry_after = headers.get("retry-after")
    if retry_after:
        try:
            waits.append(float(retry_after))
        except ValueError:
            when = email.utils.parsedate_to_datetime(retry_after) if retry_after.strip() else None
            if when is not None:
                waits.append(when.timestamp() - now)
    retry_at = headers.get("x-rate-limit-retry")
    if retry_at:
        with contextlib.suppress(ValueError):
            waits.append(float(retry_at) - now)
    if not waits:
        return THROTTLE_DEFAULT_S
    return min(max(max(waits), 0.0), THROTTLE_CAP_S)


class VoucherifyClient:
    """GET requests to one Voucherify API base URL, within a request budget."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        budget: RequestBudget,
        timeout_s: float = 30.0,
        max_attempts: int = 8,
        stop: threading.Event | None = None,
        on_wait: Callable[[str, float], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self.budget = budget
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.stop = stop or threading.Event()
        self.stats = ApiStats()
        self._on_wait = on_wait or (lambda _why, _s: None)

    def customers(self, params: Mapping[str, str]) -> dict[str, Any]:
        return self.get("/v1/customers", params)

    def activity(self, customer_id: str, params: Mapping[str, str]) -> dict[str, Any]:
        return self.get(f"/v1/customers/{urllib.parse.quote(customer_id, safe='')}/activity", params)

    def get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """The JSON object answered; raises AuthError, NotFound, ApiError or Stopped."""
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        path = mask_embedded(path)  # for messages: a --customer source_id may be an email
        failures = 0
        while True:
            self._pause(self.budget.wait_s(), "budget")
            self.budget.take()
            self.stats.requests += 1
            try:
                answer = self._send(url)
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                failures += 1
                self._give_up_after(failures, path, f"network error: {getattr(exc, 'reason', exc)}")
                self._pause(self._backoff_s(failures), "network error")
                continue
            if answer.status == 200:
                return self._json(answer, path)
            if answer.status in (401, 403):
                raise AuthError(
                    f"Voucherify answered {answer.status} for {path}: check {APP_ID_ENV} and {APP_TOKEN_ENV}"
                    " (and that the key may read customers)"
                )
            if answer.status == 404:
                self.stats.not_found += 1
                raise NotFound(f"{path}: 404")
            if answer.status == 429:
                wait = throttle_wait_s(answer.headers, time.time())
                self.stats.throttled += 1
                self.stats.throttled_s += wait
                self._pause(wait, "429")
                continue
            if answer.status >= 500:
                failures += 1
                self._give_up_after(failures, path, f"HTTP {answer.status}")
                self._pause(self._backoff_s(failures), f"HTTP {answer.status}")
                continue
            raise ApiError(f"Voucherify answered {answer.status} for {path}: {mask_embedded(repr(answer.body[:200]))}")

    def _send(self, url: str) -> Answer:
        request = urllib.request.Request(
            url,
            headers={
                "X-App-Id": self._credentials.app_id,
                "X-App-Token": self._credentials.app_token,
                "Accept": "application/json",
                "User-Agent": "customer-activity-consumer-backfill",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return Answer(response.status, response.read(), _lower(response.headers))
        except urllib.error.HTTPError as exc:
            with exc:
                return Answer(exc.code, exc.read(), _lower(exc.headers))

    def _json(self, answer: Answer, path: str) -> dict[str, Any]:
        try:
            body = json.loads(answer.body)
        except ValueError:
            raise ApiError(f"{path}: the answer is not JSON ({answer.body[:80]!r})") from None
        if not isinstance(body, dict):
            raise ApiError(f"{path}: the answer is not a JSON object")
        return body

    def _backoff_s(self, failures: int) -> float:
        self.stats.retried += 1
        return float(min(BACKOFF_FIRST_S * 2.0 ** (failures - 1), BACKOFF_CAP_S))

    def _give_up_after(self, failures: int, path: str, what: str) -> None:
        if failures >= self.max_attempts:
            raise ApiError(f"{path}: {what}, {failures} attempt(s); giving up (progress is saved: rerun resumes)")

    def _pause(self, seconds: float, why: str) -> None:
        if seconds <= 0:
            if self.stop.is_set():
                raise Stopped
            return
        if seconds >= 1.0:
            self._on_wait(why, seconds)
        if self.stop.wait(seconds):  # a SIGTERM ends the wait at once
            raise Stopped


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()} if headers is not None else {}
