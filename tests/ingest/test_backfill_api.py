"""The backfill against a local double of Voucherify's API, no broker: the HTTP client's manners
(429s with the real headers, 5xx and network retries, 401, the request budget) and the paging
of both lists, in dry runs of the real command."""

from __future__ import annotations

import email.utils
import re
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from consumer.cli.main import main
from consumer.ingest import voucherify_api
from consumer.ingest.voucherify_api import (
    ApiError,
    AuthError,
    Credentials,
    NotFound,
    RequestBudget,
    VoucherifyClient,
    throttle_wait_s,
)
from tests.support.voucherify_api_double import (
    APP_ID,
    APP_TOKEN,
    VoucherifyApiDouble,
    backfill_args,
    make_project,
)

CREDENTIALS = Credentials(APP_ID, APP_TOKEN)
FAST = ("--max-requests-per-minute", "60000")


@pytest.fixture
def creds_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCHERIFY_APP_ID", APP_ID)
    monkeypatch.setenv("VOUCHERIFY_APP_TOKEN", APP_TOKEN)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(voucherify_api, "BACKOFF_FIRST_S", 0.05)


def _client(url: str, per_minute: int = 60_000, **kw: object) -> VoucherifyClient:
    return VoucherifyClient(url, CREDENTIALS, budget=RequestBudget(per_minute), timeout_s=5, **kw)  # type: ignore[arg-type]


def test_throttle_hints_are_read_as_documented() -> None:
    now = 1_800_000_000.0
    assert throttle_wait_s({"retry-after": "7"}, now) == 7
    assert throttle_wait_s({"x-rate-limit-retry": str(int(now) + 12)}, now) == 12
    http_date = email.utils.formatdate(now + 30, usegmt=True)
    assert throttle_wait_s({"retry-after": http_date}, now) == pytest.approx(30, abs=1)
    assert throttle_wait_s({"retry-after": "3", "x-rate-limit-retry": str(int(now) + 9)}, now) == 9  # the longer
    assert throttle_wait_s({}, now) == voucherify_api.THROTTLE_DEFAULT_S
    assert throttle_wait_s({"retry-after": "999999"}, now) == voucherify_api.THROTTLE_CAP_S


def test_429_is_waited_out_as_its_headers_say() -> None:
    with VoucherifyApiDouble(make_project([1] * 3), limit=3, window_s=1.5) as api:
        client = _client(api.url)
        for _ in range(5):
            assert client.customers({"limit": "100"})["object"] == "list"
        throttled = [i for i, s in enumerate(api.seen) if s.status == 429]
        assert throttled and client.stats.throttled == len(throttled)
        for i in throttled:  # the next request came only after the Retry-After (>= 1 s) had passed
            assert api.seen[i + 1].t - api.seen[i].t >= 0.95
        assert api.count(200) == 5


def test_5xx_is_retried_with_backoff_then_given_up(fast_backoff: None) -> None:
    with VoucherifyApiDouble(make_project([1])) as api:
        client = _client(api.url, max_attempts=4)
        api.fail_next(500, 503, 502)
        assert client.customers({"limit": "10"})["customers"]
        assert client.stats.retried == 3 and [s.status for s in api.seen] == [500, 503, 502, 200]
        gaps = [b.t - a.t for a, b in zip(api.seen, api.seen[1:], strict=False)]
        assert gaps[1] >= gaps[0] * 1.5 and gaps[2] >= gaps[1] * 1.5  # doubling
        api.fail_next(503, 503, 503, 503)
        with pytest.raises(ApiError, match="HTTP 503, 4 attempt"):
            client.customers({"limit": "10"})


def test_network_errors_are_retried_then_reported(fast_backoff: None) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = _client(f"http://127.0.0.1:{port}", max_attempts=3)
    with pytest.raises(ApiError, match=r"network error.*3 attempt"):
        client.customers({})
    assert client.stats.requests == 3 and client.stats.retried == 2


def test_401_is_an_auth_error_at_once_and_404_is_not_found() -> None:
    with VoucherifyApiDouble(make_project([1], deleted=(0,))) as api:
        bad = VoucherifyClient(api.url, Credentials(APP_ID, "wrong"), budget=RequestBudget(60_000))
        with pytest.raises(AuthError, match="401"):
            bad.customers({})
        assert api.count() == 1  # not retried
        with pytest.raises(NotFound):
            _client(api.url).activity("cust_p00000", {"limit": "100"})


def test_credentials_never_show_in_repr() -> None:
    assert APP_TOKEN not in repr(CREDENTIALS) and APP_ID in repr(CREDENTIALS)
    with pytest.raises(AuthError, match="VOUCHERIFY_APP_TOKEN"):
        Credentials.from_env({"VOUCHERIFY_APP_ID": APP_ID})


def _backfill(api: VoucherifyApiDouble, tmp_path: Path, *extra: str) -> list[str]:
    return backfill_args(api, tmp_path / "progress.json", "customer-activity", *extra)


def _summary_number(text: str, label: str) -> int:
    match = re.search(rf"{label}: (\d+)", text)
    assert match, f"no {label!r} in {text}"
    return int(match.group(1))


def test_dry_run_pages_both_lists_and_writes_nothing(
    creds_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 230 customers (three listing pages) with ties across page boundaries; some customers
    # have two or three pages of activity; two were deleted after being listed.
    counts = [(i * 7) % 5 for i in range(230)]
    counts[3], counts[150], counts[229] = 250, 101, 100
    project = make_project(counts, deleted=(10, 120), ties_every=6)
    with VoucherifyApiDouble(project) as api:
        code = main(_backfill(api, tmp_path, "--dry-run", "--max-requests-per-minute", "60000"))
        err = capsys.readouterr().err
        assert code == 0, err
        expected = project.all_activities()
        assert _summary_number(err, "activities that would be sent") == len(expected)
        assert "230 done this run" in err and "2 deleted (404, skipped)" in err
        by_type = Counter(a["type"] for a in expected)
        for activity_type, n in by_type.items():
            assert f"{activity_type} {n}" in err
        listing = [s for s in api.seen if s.path == "/v1/customers"]
        assert len(listing) == 3 and all("page" not in s.params for s in listing)
        assert all(s.params["order"] == "created_at" and s.params["limit"] == "100" for s in listing)
        assert "starting_after" not in listing[0].params and all("starting_after" in s.params for s in listing[1:])
        activity = [s for s in api.seen if s.path.endswith("/activity")]
        per_customer = Counter(s.path for s in activity)
        assert per_customer["/v1/customers/cust_p00003/activity"] == 3  # 250 = 100 + 100 + 50
        assert per_customer["/v1/customers/cust_p00150/activity"] == 2
        assert per_customer["/v1/customers/cust_p00229/activity"] == 1  # exactly 100: has_more false
        assert sum(per_customer.values()) == 230 + 2 + 1
        cursors = [s.params.get("starting_after_id") for s in activity if s.path.endswith("p00003/activity")]
        assert cursors == [None, "evcus_p00003x00099", "evcus_p00003x00199"]
        assert not (tmp_path / "progress.json").exists()


def test_since_until_and_given_customers(creds_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = make_project([150, 3, 3, 40])
    given = ["cust_p00000", "cust_p00003", "cust_gone"]
    with VoucherifyApiDouble(project) as api:
        # Activities of customer i are at BASE + i s + 1 day + j min: keep minutes 10..69 of the day.
        window = ["--since", "2025-01-02T00:10:00Z", "--until", "2025-01-02T01:10:00Z"]
        args = _backfill(api, tmp_path, "--dry-run", *window, *[f"--customer={c}" for c in given])
        assert main(args) == 0
        err = capsys.readouterr().err
        assert not any(s.path == "/v1/customers" for s in api.seen)  # no listing
        assert {s.params["start_date"] for s in api.seen} == {"2025-01-02T00:10:00.000Z"}
        assert {s.params["end_date"] for s in api.seen} == {"2025-01-02T01:10:00.000Z"}
        inside = [
            a
            for c in ("cust_p00000", "cust_p00003")
            for a in project.activities[c]
            if "2025-01-02T00:10" <= a["created_at"] < "2025-01-02T01:10"
        ]
        assert _summary_number(err, "activities that would be sent") == len(inside) > 0
        assert "1 deleted (404, skipped)" in err and "3 done this run" in err


def test_the_budget_paces_requests_over_a_short_window(
    creds_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    per_minute = 300  # one request every 0.2 s
    with VoucherifyApiDouble(make_project([1] * 18)) as api:
        started = time.monotonic()
        assert main(_backfill(api, tmp_path, "--dry-run", "--max-requests-per-minute", str(per_minute))) == 0
        took = time.monotonic() - started
        n = api.count()
        assert n == 19  # one listing page and 18 customers
        assert took >= (n - 1) * 60 / per_minute * 0.95
        assert api.max_in_window(1.0) <= per_minute / 60 + 1
        assert api.max_in_window(2.0) <= 2 * per_minute / 60 + 1
    capsys.readouterr()


def test_bad_credentials_exit_2_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOUCHERIFY_APP_ID", APP_ID)
    monkeypatch.setenv("VOUCHERIFY_APP_TOKEN", "sk-wrong-token-must-not-show")
    with VoucherifyApiDouble(make_project([2] * 3)) as api:
        code = main(_backfill(api, tmp_path))
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: Voucherify answered 401"), lines
    assert "VOUCHERIFY_APP_TOKEN" in lines[0] and "sk-wrong-token" not in out + err
    monkeypatch.delenv("VOUCHERIFY_APP_TOKEN")
    assert main(_backfill(api, tmp_path)) == 2
    assert capsys.readouterr().err.strip() == (
        "error: set VOUCHERIFY_APP_TOKEN (the project's Application ID and Secret Key)"
    )


def test_bad_settings_exit_2_naming_them(creds_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["backfill", "--topic", "t", "--api-url", "ftp://x", "--since", "2025-02-01", "--until", "2025-01-01"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--api-url 'ftp://x': must be an http(s):// base URL" in err
    assert "--since '2025-02-01' is not before --until '2025-01-01'" in err


def test_over_a_page_of_customers_created_at_one_instant_are_all_reached(
    creds_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two runs of 130 customers created at one instant, each over a page: the time cursor
    # cannot get inside them, so each is paged with `page` within its millisecond.
    project = make_project([1] * 260, ties_every=130)
    with VoucherifyApiDouble(project) as api:
        assert main(_backfill(api, tmp_path, "--dry-run", *FAST)) == 0
        err = capsys.readouterr().err
        assert "260 done this run" in err
        assert _summary_number(err, "activities that would be sent") == 260
        activity = Counter(s.path for s in api.seen if s.path.endswith("/activity"))
        assert len(activity) == 260 and set(activity.values()) == {1}  # each customer once
        paged = [s.params for s in api.seen if "page" in s.params]
        assert [p["page"] for p in paged] == ["1", "2", "1", "2"]
        assert paged[0]["created_at[after]"] == "2024-12-31T23:59:59.999Z"
        assert paged[0]["created_at[before]"] == "2025-01-01T00:00:00.001Z"


def test_an_activity_the_contract_cannot_carry_is_named_left_out_and_fails_the_run(
    creds_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project([3, 3])
    broken = project.activities["cust_p00001"][1]
    del broken["type"]
    with VoucherifyApiDouble(project) as api:
        assert main(_backfill(api, tmp_path, "--dry-run", *FAST)) == 1
    err = capsys.readouterr().err
    assert _summary_number(err, "activities that would be sent") == 5
    assert "NOT sent: 1 activities the contract cannot carry" in err
    assert broken["id"] in err and "activity_not_encodable" in err  # the log names it
