"""The dlq tools' pure parts: time filters, replay headers, the progress bar, PII-safe headers."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from consumer.cli.dlq_inspect import safe_headers
from consumer.cli.dlq_read import DeadLetter, DlqError, Filters, parse_when
from consumer.cli.dlq_replay import Progress, Tally, replay_headers
from consumer.contract import (
    H_ACTIVITY_ID,
    H_ACTIVITY_TYPE,
    H_DLQ_FAILED_AT,
    H_DLQ_REASON,
    H_DLQ_REASON_CODE,
    H_DLQ_REPLAY_COUNT,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _dl(headers: list[tuple[str, bytes | None]], ts: int = 0) -> DeadLetter:
    return DeadLetter(0, 7, b"k", b"v", headers, ts)


def test_parse_when() -> None:
    assert parse_when("2026-11-27T10:00", "--since") == int(datetime(2026, 11, 27, 10, tzinfo=UTC).timestamp() * 1000)
    assert parse_when("2026-11-27T11:00+01:00", "--since") == parse_when("2026-11-27T10:00Z", "--since")
    assert parse_when("2h", "--since", NOW) == int(NOW.timestamp() * 1000) - 2 * 3600_000
    with pytest.raises(DlqError, match="--until 'soon'"):
        parse_when("soon", "--until")


def test_replay_headers_drop_the_diagnosis_and_count_the_replay() -> None:
    d = _dl([(H_ACTIVITY_ID, b"evcus_1"), (H_DLQ_REASON_CODE, b"handler_error"), (H_DLQ_REPLAY_COUNT, b"2")])
    assert d.replay_count == 2
    assert replay_headers(d) == [(H_ACTIVITY_ID, b"evcus_1"), (H_DLQ_REPLAY_COUNT, b"3")]


def test_filters_use_the_failed_at_header_then_the_timestamp() -> None:
    d = _dl([(H_DLQ_REASON_CODE, b"malformed"), (H_ACTIVITY_TYPE, b"customer.created"), (H_DLQ_FAILED_AT, b"5000")], 1)
    assert d.failed_at_ms == 5000 and _dl([], 42).failed_at_ms == 42
    assert Filters(frozenset({"malformed"}), frozenset({"customer.created"}), 5000, 5000).matches(d)
    assert not Filters(reasons=frozenset({"handler_error"})).matches(d)
    assert not Filters(since_ms=5001).matches(d)
    assert Filters(until_ms=4999).after_until(d) and not Filters(until_ms=5000).after_until(d)


def test_progress_without_a_terminal_writes_a_line_per_tenth() -> None:
    out = io.StringIO()
    p = Progress(100, out, tty=False)
    t = Tally()
    for done in range(101):
        t.replayed = done
        p.update(done, t, dry_run=False)
    p.update(100, t, dry_run=False, final=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # 0%, 10% .. 100%; the final line repeats nothing
    assert lines[-1].startswith("replay [" + "#" * 30 + "] 100/100 100%  replayed 100,")


def test_progress_on_a_terminal_redraws_in_place() -> None:
    out = io.StringIO()
    Progress(4, out, tty=True).update(4, Tally(replayed=4), dry_run=True, final=True)
    assert out.getvalue().startswith("\rreplay [") and "would replay 4" in out.getvalue()


def test_sample_headers_keep_ours_and_mask_the_rest() -> None:
    d = _dl(
        [
            (H_DLQ_REASON, b"customer jane.doe@example.com not found, call +44 7700 900123"),
            (H_DLQ_FAILED_AT, b"1795802696891"),
            ("email", b"jane.doe@example.com"),
        ]
    )
    shown = safe_headers(d)
    assert "jane.doe" not in str(shown) and "7700" not in str(shown)
    assert shown[H_DLQ_FAILED_AT] == "1795802696891"
