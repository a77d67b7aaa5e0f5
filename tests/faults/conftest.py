"""Fixtures for fault-injection tests on librdkafka's mock cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.mock_cluster import MockCluster


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
