"""What tests on the session's broker (the `kafka_bootstrap` fixture in tests/conftest.py) share:
the type of the `topic_factory` fixture, and consumer settings for quick group joins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

# Consumer settings for quick group joins on Tansu. Tansu answers the first JoinGroup after
# about session.timeout.ms / 2 (never under ~1 s), so the 45 s default costs ~23 s per join and
# these ~3 s. KIP-848 (group.protocol=consumer) never completes a join on Tansu: keep classic.
FAST_GROUP_CONFIG: dict[str, Any] = {
    "group.protocol": "classic",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "auto.offset.reset": "earliest",
    # Shorter fetch long-poll: a test's last poll() returns sooner when a partition runs dry.
    "fetch.wait.max.ms": 100,
}


class TopicFactory(Protocol):
    def __call__(
        self,
        partitions: int = 4,
        *,
        prefix: str | None = None,
        config: Mapping[str, str] | None = None,
    ) -> str: ...
