"""Fixtures for fault-injection tests on librdkafka's mock cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mock_cluster import MockCluster
from tests.support.mock_workers import create_topics, patch_worker_for_mock, stop_all, unique


@pytest.fixture
def mock_cluster(request: pytest.FixtureRequest) -> Iterator[MockCluster]:
    """A fresh 3-broker mock cluster, destroyed after the test.

    ``group.initial.rebalance.delay.ms`` is 0 (the mock's default, 3000, would add 3 s to every
    first group join); call ``group_initial_rebalance_delay_ms`` to restore it.
    Another broker count: ``@pytest.mark.parametrize("mock_cluster", [1], indirect=True)``.
    """
    num_brokers = int(getattr(request, "param", 3))
    cluster = MockCluster(num_brokers)
    cluster.group_initial_rebalance_delay_ms(0)
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def names(
    mock_cluster: MockCluster, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[tuple[str, str]]:
    """A fresh input topic (with all its outputs; the test module's `PARTITIONS`, else 1) and
    group on the mock cluster; workers the test started are stopped before the cluster goes."""
    patch_worker_for_mock(monkeypatch)
    topic, group = unique("activities"), unique("group")
    create_topics(mock_cluster, topic, getattr(request.module, "PARTITIONS", 1), group)
    yield topic, group
    stop_all()
