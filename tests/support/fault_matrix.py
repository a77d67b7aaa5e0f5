"""The fault matrix's bookkeeping: what each scenario sent, and where every event ended up.

Every fault scenario streams a known set of activity ids, reads every output topic back, and
calls :func:`tally`: per id, the records one processing of the event yields (its results, or
one dead letter) against the records found downstream. The `fault_matrix` fixture records each
scenario's row in ``<pytest basetemp>/fault-matrix.jsonl``, prints it (visible with ``-s``), and
the terminal summary prints the whole table at the end of the run.

Counts are of events (activity ids), not records:
- forwarded: not dead-lettered, and every expected result is downstream;
- dead-lettered: has a record in the dead-letter topic;
- lost: neither (a result is missing);
- duplicated: more records downstream than one processing yields;
- misrouted: dead-lettered though valid, or forwarded though it should be dead-lettered.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from consumer.contract import H_ACTIVITY_ID
from consumer.model import activity_from_record
from consumer.pipeline.codec import AvroCodec, DecodeError
from consumer.pipeline.router import Router
from tests.support.workers import Record

Stream = Iterable[tuple[str, str | None, bytes]]
_FILE = "fault-matrix.jsonl"
_ROWS_KEY = pytest.StashKey[list[dict[str, Any]]]()


class MissingBehaviour(AssertionError):
    """A scenario met the contract's one missing piece, checked last, after every other assertion.

    Tests mark it ``xfail(strict=True, raises=MissingBehaviour)``: any other failure still fails,
    and the test turns red (XPASS) once the behaviour lands, so the mark cannot outlive the gap.
    """


@dataclass(frozen=True)
class Expect:
    """What one processing of an event yields: `results` records, or one dead letter."""

    results: int
    dead: bool


@dataclass(frozen=True)
class Tally:
    sent: int
    forwarded: int
    dead_lettered: int
    lost: int
    duplicated: int
    misrouted: int
    lost_ids: tuple[str, ...] = ()
    misrouted_ids: tuple[str, ...] = ()

    @property
    def conserved(self) -> bool:
        return self.forwarded + self.dead_lettered == self.sent and self.lost == 0 and self.misrouted == 0


def expectations(stream: Stream, codec: AvroCodec | None = None) -> dict[str, Expect]:
    """Per activity id, what one processing yields (decoded here with the worker's codec and router)."""
    codec, router = codec or AvroCodec(), Router()
    out: dict[str, Expect] = {}
    for activity_id, _key, value in stream:
        try:
            results = router.route(activity_from_record(codec.decode(value)))
        except DecodeError:
            out[activity_id] = Expect(1, True)
            continue
        out[activity_id] = Expect(len(results), False)
    return out


def tally(expected: Mapping[str, Expect], records: Iterable[Record], dlq_suffix: str = ".dlq") -> Tally:
    """Conservation and duplicates of `expected`'s ids in `records` (every output topic's records)."""
    results: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    for r in records:
        raw = r.headers.get(H_ACTIVITY_ID)
        if raw is None:
            continue
        (dead if r.topic.endswith(dlq_suffix) else results)[raw.decode("utf-8", "replace")] += 1
    forwarded = dead_lettered = duplicated = 0
    lost: list[str] = []
    misrouted: list[str] = []
    for activity_id, want in expected.items():
        got_results, got_dead = results[activity_id], dead[activity_id]
        if got_dead:
            dead_lettered += 1
            if not want.dead:
                misrouted.append(activity_id)
        elif got_results >= want.results and not want.dead:
            forwarded += 1
        else:
            if want.dead and got_results:
                misrouted.append(activity_id)
            lost.append(activity_id)
        if got_results > (0 if want.dead else want.results) or got_dead > (1 if want.dead else 0):
            duplicated += 1
    return Tally(
        sent=len(expected),
        forwarded=forwarded,
        dead_lettered=dead_lettered,
        lost=len(lost),
        duplicated=duplicated,
        misrouted=len(misrouted),
        lost_ids=tuple(sorted(lost)[:10]),
        misrouted_ids=tuple(sorted(misrouted)[:10]),
    )


class MatrixRecorder:
    """Records one row per scenario for the run's fault-matrix table."""

    def __init__(self, path: Path, rows: list[dict[str, Any]], test_id: str) -> None:
        self.path = path
        self.rows = rows
        self.test_id = test_id

    def record(self, scenario: str, guarantee: str, t: Tally, **notes: Any) -> None:
        row = {
            "scenario": scenario,
            "guarantee": guarantee,
            **{k: v for k, v in asdict(t).items() if not k.endswith("_ids")},
            "conserved": t.conserved,
            "test": self.test_id,
            **notes,
        }
        self.rows.append(row)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"\nFAULT-MATRIX {scenario} [{guarantee}] sent={t.sent} forwarded={t.forwarded} "
            f"dead_lettered={t.dead_lettered} lost={t.lost} duplicated={t.duplicated} misrouted={t.misrouted}"
            + "".join(f" {k}={v}" for k, v in notes.items())
        )


@pytest.fixture
def fault_matrix(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> MatrixRecorder:
    """``fault_matrix.record(scenario, guarantee, tally(...))``: one row of the run's table."""
    rows = request.config.stash.setdefault(_ROWS_KEY, [])
    return MatrixRecorder(tmp_path_factory.getbasetemp() / _FILE, rows, request.node.nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands its rows to the controller, which prints the table."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output[_FILE] = json.dumps(session.config.stash.get(_ROWS_KEY, []))


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent from a run without it
def pytest_testnodedown(node: Any, error: Any) -> None:
    rows = json.loads(getattr(node, "workeroutput", {}).get(_FILE, "[]"))
    node.config.stash.setdefault(_ROWS_KEY, []).extend(rows)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(_ROWS_KEY, [])
    if not rows:
        return
    write: Callable[[str], None] = terminalreporter.write_line
    terminalreporter.section("fault matrix")
    cols = ("scenario", "guarantee", "sent", "forwarded", "dead_lettered", "lost", "duplicated", "misrouted")
    write(" | ".join(cols))
    for row in rows:
        write(" | ".join(str(row.get(c, "")) for c in cols))


def rows_of(path: Path) -> Iterator[dict[str, Any]]:
    """The rows a run wrote (for tooling that tabulates them)."""
    if path.exists():
        for line in path.read_text().splitlines():
            yield json.loads(line)
