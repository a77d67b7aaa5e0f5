"""The backfill's progress file: saved atomically, read back the same, refused for another run."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.cli.main import main
from consumer.ingest.progress import Position, ProgressError, ProgressFile
from tests.support.voucherify_api_double import VoucherifyApiDouble, backfill_args, credentials_env, make_project

RUN = {"topic": "t", "api_url": "http://x", "since": None, "until": None, "customers": []}


def test_saved_position_reads_back_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = ProgressFile(tmp_path / "state" / "progress.json")
    position = store.load(RUN)
    assert position == Position(run=RUN)
    position.next_listing_page("2025-01-01T00:00:01.000Z", ["cust_b", "cust_a"])
    position.start_customer("cust_c")
    position.after = "evcus_1"
    position.inflight = {"customer": "cust_c", "after": "evcus_1", "ids": ["evcus_2"]}
    store.save(position)
    assert store.load(RUN) == position
    assert [p.name for p in store.path.parent.iterdir()] == ["progress.json"]
    assert store.load(RUN).start_customer("cust_c") == "evcus_1"  # resumes inside the customer
    assert store.load(RUN).is_done("cust_a")


def test_a_dry_run_never_writes(tmp_path: Path) -> None:
    store = ProgressFile(tmp_path / "progress.json", read_only=True)
    store.save(Position(run=RUN))
    assert not store.path.exists()


def test_another_runs_or_a_damaged_file_is_refused(tmp_path: Path) -> None:
    store = ProgressFile(tmp_path / "progress.json")
    store.save(Position(run=RUN))
    with pytest.raises(ProgressError, match=r"another backfill .*topic=t"):
        store.load({**RUN, "since": "2025-01-01T00:00:00.000Z"})
    store.path.write_text("{not json")
    with pytest.raises(ProgressError, match="cannot read"):
        store.load(RUN)


def test_the_cli_refuses_another_runs_file_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in credentials_env().items():
        monkeypatch.setenv(name, value)
    progress = tmp_path / "progress.json"
    ProgressFile(progress).save(Position(run={**RUN, "topic": "elsewhere"}))
    with VoucherifyApiDouble(make_project([1])) as api:
        assert main(backfill_args(api, progress, "customer-activity", "--dry-run")) == 2
        assert api.count() == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds the progress of another backfill" in err[0], err
