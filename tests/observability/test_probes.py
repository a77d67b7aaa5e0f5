"""/healthz and /readyz of a real worker: readiness follows the partition assignment, liveness
follows the poll loop, both answer fast, and SIGTERM ends the process cleanly in time."""

from __future__ import annotations

import statistics
import time
import uuid
from pathlib import Path

import pytest

from tests.support.broker import TopicFactory
from tests.support.observed_worker import PARTITIONS, ObservedRun, Reply, WorkerProc, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DEFAULT_GRACE_SECONDS = 10.0


def test_readyz_is_503_until_partitions_are_assigned_then_200(observed_run: ObservedRun) -> None:
    trace = observed_run.readiness
    assert len(trace) >= 3
    # The group join takes ~3 s on Tansu, so the first answer comes before the assignment.
    assert trace[0].status == 503, trace[0]
    first_ready = next(i for i, r in enumerate(trace) if r.status == 200)
    assert all(r.status == 503 for r in trace[:first_ready])
    assert all(r.body.strip() in ("not connected to Kafka", "no partitions assigned") for r in trace[:first_ready])
    # ready from the assignment on, until it was told to stop
    assert all(r.status == 200 for r in trace[first_ready:]), [r for r in trace[first_ready:] if r.status != 200]
    assert trace[-1].body.strip() == f"{PARTITIONS} partition(s) assigned"


def test_healthz_is_200_while_the_loop_turns(observed_run: ObservedRun) -> None:
    trace = observed_run.liveness
    assert len(trace) >= 3
    assert all(r.status == 200 for r in trace), [r for r in trace if r.status != 200]
    assert all(r.body.startswith("last poll ") for r in trace)


def _seconds(replies: list[Reply]) -> list[float]:
    return sorted(r.seconds for r in replies)


def test_probes_answer_well_under_100ms(observed_run: ObservedRun) -> None:
    # measured while the worker joined the group, consumed and committed, on a shared 2-core box
    for name, replies in (("/readyz", observed_run.readiness), ("/healthz", observed_run.liveness)):
        took = _seconds(replies)
        assert len(took) >= 10, name
        assert statistics.median(took) < 0.02, (name, took)
        assert took[-1] < 0.1, (name, took[-5:])


def test_sigterm_exits_0_within_the_grace_period(observed_run: ObservedRun) -> None:
    assert observed_run.exit_code == 0, observed_run.stdout[-2000:] + observed_run.stderr[-2000:]
    assert observed_run.stop_seconds < DEFAULT_GRACE_SECONDS
    lines = observed_run.stdout
    assert '"event": "signal_received"' in lines and '"signal": "SIGTERM"' in lines
    assert '"event": "worker_stopped"' in lines


def test_a_spare_member_is_unready_until_it_takes_over_the_partition(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    """Two workers, one partition: the one without it is not ready (there is no idle-by-design
    state: readiness needs an assignment, see deploy/k8s/base/deployment.yaml); when the owner
    stops, the spare gets the partition and turns ready."""
    topic = topic_factory(1)
    group = f"obs-spare-{uuid.uuid4().hex[:8]}"
    workers = [WorkerProc.start(kafka_bootstrap, topic, group, tmp_path, name=f"w{i}") for i in range(2)]
    try:
        for w in workers:
            w.wait_http()

        def split() -> tuple[WorkerProc, WorkerProc] | None:
            replies = [w.get("/readyz") for w in workers]
            if any(r is None for r in replies):
                return None
            ready = [w for w, r in zip(workers, replies, strict=True) if r is not None and r.status == 200]
            if len(ready) != 1:
                return None
            owner = ready[0]
            return owner, workers[1 - workers.index(owner)]

        owner, spare = wait_for(split, 30, "exactly one of two workers ready")
        reply = owner.get("/readyz")
        assert reply is not None and reply.body.strip() == "1 partition(s) assigned"
        # stable: the spare stays unready while the owner holds the partition
        for _ in range(10):  # ~1 s
            spare_reply = spare.get("/readyz")
            assert spare_reply is not None and spare_reply.status == 503, spare_reply
            live = spare.get("/healthz")
            assert live is not None and live.status == 200, live
            time.sleep(0.1)
        assert spare_reply.body.strip() == "no partitions assigned"
        code, took = owner.terminate()
        assert code == 0 and took < DEFAULT_GRACE_SECONDS, owner.tail()

        def spare_ready() -> Reply | None:
            r = spare.get("/readyz")
            return r if r is not None and r.status == 200 else None

        reply = wait_for(spare_ready, 30, "the spare to take over the partition")
        assert reply.body.strip() == "1 partition(s) assigned"
        code, took = spare.terminate()
        assert code == 0 and took < DEFAULT_GRACE_SECONDS, spare.tail()
    finally:
        for w in workers:
            w.kill()
