"""ctypes wrapper around librdkafka's mock cluster, for fault-injection tests.

librdkafka ships a mock Kafka cluster (``rdkafka_mock.h``): real TCP brokers on loopback that
speak the Kafka protocol and let a test take brokers down, add latency, move partition leaders
and make the next N requests of a given kind fail. confluent-kafka does not expose it, but the
librdkafka shared library inside its wheel exports the C API, which this module binds.

The mock does not serve the CreateTopics admin API: use :meth:`MockCluster.create_topic`.
The API is marked experimental upstream; signatures here match librdkafka 2.x.
"""

from __future__ import annotations

import ctypes
import enum
import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

import confluent_kafka

__all__ = ["ApiKey", "MockCluster", "MockClusterError", "MockRequest", "find_librdkafka"]

_RD_KAFKA_PRODUCER = 0
_ERRSTR_SIZE = 512


class ApiKey(enum.IntEnum):
    """Kafka protocol request types (the ``ApiKey`` of a request header)."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    API_VERSIONS = 18
    INIT_PRODUCER_ID = 22
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    TXN_OFFSET_COMMIT = 28


class MockRequest(NamedTuple):
    """One request the mock cluster received (see :meth:`MockCluster.start_request_tracking`)."""

    broker_id: int
    api_key: int
    timestamp_us: int


class MockClusterError(RuntimeError):
    """A mock-cluster call returned an error code."""


def find_librdkafka() -> str:
    """Path of the librdkafka shared library that confluent-kafka itself uses.

    ``$RDKAFKA_LIBRARY`` overrides. Otherwise the library bundled in the wheel
    (``site-packages/confluent_kafka.libs/librdkafka-*.so*`` on Linux,
    ``confluent_kafka/.dylibs/librdkafka*.dylib`` on macOS).
    """
    override = os.environ.get("RDKAFKA_LIBRARY")
    if override:
        return override
    package_dir = Path(confluent_kafka.__file__).resolve().parent
    patterns = [
        str(package_dir.parent / "confluent_kafka.libs" / "librdkafka*.so*"),
        str(package_dir / ".dylibs" / "librdkafka*.dylib"),
        str(package_dir.parent / "confluent_kafka.libs" / "librdkafka*.dll"),
    ]
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise FileNotFoundError(
        f"no librdkafka shared library found next to confluent_kafka ({package_dir}); set RDKAFKA_LIBRARY to its path"
    )


_lib: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    """Load librdkafka once and declare the signatures used here."""
    global _lib
    if _lib is not None:
        return _lib
    lib = ctypes.CDLL(find_librdkafka())
    vp, cp, i32, i16, i64, sz = (
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int32,
        ctypes.c_int16,
        ctypes.c_int64,
        ctypes.c_size_t,
    )
    err = ctypes.c_int  # rd_kafka_resp_err_t
    signatures: dict[str, tuple[type | None, list[type]]] = {
        "rd_kafka_conf_new": (vp, []),
        "rd_kafka_conf_set": (ctypes.c_int, [vp, cp, cp, cp, sz]),
        "rd_kafka_conf_destroy": (None, [vp]),
        "rd_kafka_new": (vp, [ctypes.c_int, vp, cp, sz]),
        "rd_kafka_destroy": (None, [vp]),
        "rd_kafka_err2name": (cp, [err]),
        "rd_kafka_mock_cluster_new": (vp, [vp, ctypes.c_int]),
        "rd_kafka_mock_cluster_destroy": (None, [vp]),
        "rd_kafka_mock_cluster_bootstraps": (cp, [vp]),
        "rd_kafka_mock_topic_create": (err, [vp, cp, ctypes.c_int, ctypes.c_int]),
        "rd_kafka_mock_topic_set_error": (None, [vp, cp, err]),
        "rd_kafka_mock_broker_set_down": (err, [vp, i32]),
        "rd_kafka_mock_broker_set_up": (err, [vp, i32]),
        "rd_kafka_mock_broker_set_rtt": (err, [vp, i32, ctypes.c_int]),
        "rd_kafka_mock_push_request_errors_array": (None, [vp, i16, sz, ctypes.POINTER(err)]),
        "rd_kafka_mock_clear_request_errors": (None, [vp, i16]),
        "rd_kafka_mock_partition_set_leader": (err, [vp, cp, i32, i32]),
        "rd_kafka_mock_coordinator_set": (err, [vp, cp, cp, i32]),
        "rd_kafka_mock_group_initial_rebalance_delay_ms": (None, [vp, i32]),
        "rd_kafka_mock_set_group_consumer_session_timeout_ms": (None, [vp, ctypes.c_int]),
        "rd_kafka_mock_set_group_consumer_heartbeat_interval_ms": (None, [vp, ctypes.c_int]),
        "rd_kafka_mock_start_request_tracking": (None, [vp]),
        "rd_kafka_mock_stop_request_tracking": (None, [vp]),
        "rd_kafka_mock_clear_requests": (None, [vp]),
        "rd_kafka_mock_get_requests": (ctypes.POINTER(vp), [vp, ctypes.POINTER(sz)]),
        "rd_kafka_mock_request_id": (i32, [vp]),
        "rd_kafka_mock_request_api_key": (i16, [vp]),
        "rd_kafka_mock_request_timestamp": (i64, [vp]),
        "rd_kafka_mock_request_destroy_array": (None, [ctypes.POINTER(vp), sz]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    _lib = lib
    return lib


def _b(text: str) -> bytes:
    return text.encode("utf-8")


class MockCluster:
    """A librdkafka mock cluster with ``num_brokers`` brokers (ids 1..N) on 127.0.0.1.

    Use as a context manager, or call :meth:`destroy`. Clients connect with
    ``{"bootstrap.servers": cluster.bootstraps}``. Broker-id arguments accept ``-1`` for
    "all brokers" where librdkafka does. Error codes are librdkafka's ``rd_kafka_resp_err_t``
    values, i.e. the ``confluent_kafka.KafkaError`` constants.
    """

    def __init__(self, num_brokers: int = 3, *, log_level: int = 3) -> None:
        if num_brokers < 1:
            raise ValueError("num_brokers must be >= 1")
        lib = _library()
        self._lib = lib
        errstr = ctypes.create_string_buffer(_ERRSTR_SIZE)
        conf = lib.rd_kafka_conf_new()
        # The handle only hosts the mock cluster; it never connects anywhere itself.
        for key, value in {"log_level": str(log_level), "client.id": "mock-cluster-host"}.items():
            if lib.rd_kafka_conf_set(conf, _b(key), _b(value), errstr, _ERRSTR_SIZE) != 0:
                lib.rd_kafka_conf_destroy(conf)
                raise MockClusterError(f"rd_kafka_conf_set({key}): {errstr.value.decode()}")
        rk = lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, _ERRSTR_SIZE)
        if not rk:  # on failure the conf is still ours
            lib.rd_kafka_conf_destroy(conf)
            raise MockClusterError(f"rd_kafka_new: {errstr.value.decode()}")
        mcluster = lib.rd_kafka_mock_cluster_new(rk, num_brokers)
        if not mcluster:
            lib.rd_kafka_destroy(rk)
            raise MockClusterError("rd_kafka_mock_cluster_new returned NULL")
        self._rk: int | None = rk
        self._mcluster: int | None = mcluster
        self.num_brokers = num_brokers
        self._bootstraps: str = lib.rd_kafka_mock_cluster_bootstraps(mcluster).decode()

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def bootstraps(self) -> str:
        """Comma-separated ``host:port`` list for ``bootstrap.servers``."""
        return self._bootstraps

    @property
    def destroyed(self) -> bool:
        return self._mcluster is None

    def destroy(self) -> None:
        """Shut the brokers down and free the cluster. Idempotent."""
        mcluster, self._mcluster = self._mcluster, None
        rk, self._rk = self._rk, None
        if mcluster is not None:
            self._lib.rd_kafka_mock_cluster_destroy(mcluster)
        if rk is not None:
            self._lib.rd_kafka_destroy(rk)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def __del__(self) -> None:
        # Best effort only; tests should use the context manager or the fixture.
        if getattr(self, "_mcluster", None) is not None:
            self.destroy()

    def __repr__(self) -> str:
        state = "destroyed" if self.destroyed else self._bootstraps
        return f"MockCluster({self.num_brokers} brokers, {state})"

    # -- topics and partitions ------------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1, replication: int = 1) -> None:
        """Create ``name`` (the mock has no CreateTopics API). Replicas are capped by brokers."""
        self._check(
            "rd_kafka_mock_topic_create",
            self._lib.rd_kafka_mock_topic_create(self._handle(), _b(name), partitions, replication),
        )

    def topic_set_error(self, name: str, error: int) -> None:
        """Make Metadata (and AddPartitionsToTxn) report ``error`` for ``name``; 0 clears it."""
        self._lib.rd_kafka_mock_topic_set_error(self._handle(), _b(name), int(error))

    def partition_set_leader(self, topic: str, partition: int, broker_id: int) -> None:
        """Move the partition's leader to ``broker_id`` (-1: leaderless)."""
        self._check(
            "rd_kafka_mock_partition_set_leader",
            self._lib.rd_kafka_mock_partition_set_leader(self._handle(), _b(topic), partition, broker_id),
        )

    def coordinator_set(self, key_type: str, key: str, broker_id: int) -> None:
        """Pin the coordinator for ``key_type`` "group" or "transaction" and that id."""
        if key_type not in ("group", "transaction"):
            raise ValueError("key_type must be 'group' or 'transaction'")
        self._check(
            "rd_kafka_mock_coordinator_set",
            self._lib.rd_kafka_mock_coordinator_set(self._handle(), _b(key_type), _b(key), broker_id),
        )

    def group_initial_rebalance_delay_ms(self, delay_ms: int) -> None:
        """Broker setting ``group.initial.rebalance.delay.ms`` (mock default 3000 ms)."""
        self._lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._handle(), delay_ms)

    def group_consumer_timing(self, session_timeout_ms: int, heartbeat_interval_ms: int) -> None:
        """KIP-848 (``group.protocol=consumer``) group timing, which the broker owns there: the
        broker settings ``group.consumer.session.timeout.ms`` and ``.heartbeat.interval.ms``."""
        self._lib.rd_kafka_mock_set_group_consumer_session_timeout_ms(self._handle(), session_timeout_ms)
        self._lib.rd_kafka_mock_set_group_consumer_heartbeat_interval_ms(self._handle(), heartbeat_interval_ms)

    # -- brokers --------------------------------------------------------------------------------

    def broker_set_down(self, broker_id: int) -> None:
        """Disconnect the broker and refuse new connections (no leader change)."""
        self._check(
            "rd_kafka_mock_broker_set_down",
            self._lib.rd_kafka_mock_broker_set_down(self._handle(), broker_id),
        )

    def broker_set_up(self, broker_id: int) -> None:
        """Accept connections on the broker again."""
        self._check(
            "rd_kafka_mock_broker_set_up",
            self._lib.rd_kafka_mock_broker_set_up(self._handle(), broker_id),
        )

    def broker_set_rtt(self, broker_id: int, rtt_ms: int) -> None:
        """Delay every response from the broker by ``rtt_ms``."""
        self._check(
            "rd_kafka_mock_broker_set_rtt",
            self._lib.rd_kafka_mock_broker_set_rtt(self._handle(), broker_id, rtt_ms),
        )

    # -- request errors -------------------------------------------------------------------------

    def push_request_errors(self, api_key: int, errors: Sequence[int]) -> None:
        """The next ``len(errors)`` requests of type ``api_key`` fail with these codes, in order.

        ``KafkaError._TRANSPORT`` makes the broker drop the connection instead of answering.
        """
        if not errors:
            return
        array = (ctypes.c_int * len(errors))(*(int(e) for e in errors))
        self._lib.rd_kafka_mock_push_request_errors_array(self._handle(), int(api_key), len(errors), array)

    def broker_push_request_errors(self, broker_id: int, api_key: int, errors: Sequence[int]) -> None:
        """Like :meth:`push_request_errors`, for requests to one broker only (no added latency)."""
        if not errors:
            return
        fn = self._lib.rd_kafka_mock_broker_push_request_error_rtts
        fn.restype = ctypes.c_int
        # Variadic: (err, rtt_ms) pairs follow the fixed arguments.
        pairs: list[ctypes.c_int] = []
        for e in errors:
            pairs += [ctypes.c_int(int(e)), ctypes.c_int(0)]
        self._check(
            "rd_kafka_mock_broker_push_request_error_rtts",
            fn(
                ctypes.c_void_p(self._handle()),
                ctypes.c_int32(broker_id),
                ctypes.c_int16(int(api_key)),
                ctypes.c_size_t(len(errors)),
                *pairs,
            ),
        )

    def clear_request_errors(self, api_key: int) -> None:
        self._lib.rd_kafka_mock_clear_request_errors(self._handle(), int(api_key))

    # -- request tracking -----------------------------------------------------------------------

    def start_request_tracking(self) -> None:
        self._lib.rd_kafka_mock_start_request_tracking(self._handle())

    def stop_request_tracking(self) -> None:
        self._lib.rd_kafka_mock_stop_request_tracking(self._handle())

    def clear_requests(self) -> None:
        self._lib.rd_kafka_mock_clear_requests(self._handle())

    def get_requests(self) -> list[MockRequest]:
        """Requests received since tracking started (or the last :meth:`clear_requests`)."""
        lib = self._lib
        count = ctypes.c_size_t(0)
        array = lib.rd_kafka_mock_get_requests(self._handle(), ctypes.byref(count))
        if not array:
            return []
        try:
            return [
                MockRequest(
                    broker_id=int(lib.rd_kafka_mock_request_id(array[i])),
                    api_key=int(lib.rd_kafka_mock_request_api_key(array[i])),
                    timestamp_us=int(lib.rd_kafka_mock_request_timestamp(array[i])),
                )
                for i in range(count.value)
            ]
        finally:
            lib.rd_kafka_mock_request_destroy_array(array, count.value)

    def count_requests(self, api_keys: int | Iterable[int]) -> int:
        """How many tracked requests have one of ``api_keys``."""
        wanted = {int(api_keys)} if isinstance(api_keys, int) else {int(k) for k in api_keys}
        return sum(1 for r in self.get_requests() if r.api_key in wanted)

    # -- internals ------------------------------------------------------------------------------

    def _handle(self) -> int:
        if self._mcluster is None:
            raise MockClusterError("mock cluster already destroyed")
        return self._mcluster

    def _check(self, what: str, code: int) -> None:
        if code != 0:
            name = self._lib.rd_kafka_err2name(code)
            raise MockClusterError(f"{what} failed: {name.decode() if name else code}")
