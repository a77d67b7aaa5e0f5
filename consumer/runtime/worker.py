"""The worker: one consumer-group member, the loop that wires source -> codec -> router -> sink -> checkpoint."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry

from consumer.catalogue import label_of
from consumer.config import Settings
from consumer.contract import STREAMS
from consumer.model import Activity, Result, activity_from_record
from consumer.pipeline import checkpoint as checkpoints
from consumer.pipeline.codec import AvroCodec, DecodeError, RegistryUnavailable, SchemaStore
from consumer.pipeline.codec.avro_codec import registry_client
from consumer.pipeline.codec.engines import version as engine_version
from consumer.pipeline.codec.results import ResultEncoder
from consumer.pipeline.router import Router
from consumer.pipeline.sink import Sink
from consumer.pipeline.source import Source
from consumer.pipeline.tickets import DeliveryFailed, Ticket
from consumer.telemetry.business_metrics import BusinessMetrics
from consumer.telemetry.logs import get as get_logger
from consumer.telemetry.metrics import PipelineMetrics, new_registry
from consumer.telemetry.probes import Health

log = get_logger("consumer.runtime.worker")

TP = tuple[str, int]


class _Tally:
    """Per-batch counts of attempts, added to the metrics once per batch rather than once per event."""

    __slots__ = ("ages", "consumed", "decode_errors")

    def __init__(self) -> None:
        self.consumed: Counter[str] = Counter()
        self.decode_errors: Counter[str] = Counter()
        self.ages: list[float] = []


class _Committed:
    """One partition's slice of one batch: counts applied only once its offsets are committed,
    so a re-delivery or an aborted transaction never counts twice."""

    __slots__ = ("dead_letters", "outcomes", "processed", "results")

    def __init__(self) -> None:
        self.processed: Counter[str] = Counter()
        self.results: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.outcomes: list[Result] = []  # for the business metrics


class HandlerFailed(Exception):
    """A handler raised on every try; the event goes to the dead-letter topic."""


class Worker:
    """One consumer-group member: poll a batch, process it, let the checkpoint commit."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        health: Health | None = None,
        codec: AvroCodec | None = None,
        router: Router | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or new_registry()
        self.metrics = PipelineMetrics(self.registry)
        self.business = BusinessMetrics(self.registry)
        self.health = health or Health()
        store = SchemaStore()
        self.codec = codec or AvroCodec(
            store, registry=registry_client(settings.schema_registry_url), engine=settings.avro_engine
        )
        self.metrics.avro_engine.labels(self.codec.engine, engine_version(self.codec.engine)).set(1)
        self.router = router or Router()
        encoder = ResultEncoder(
            store,
            engine=self.codec.engine,
            framing=settings.output_framing,
            registry=registry_client(settings.schema_registry_url) if settings.output_framing == "confluent" else None,
        )
        self.sink = Sink(settings, encoder, STREAMS, transactional=settings.exactly_once)
        self.checkpoint = checkpoints.for_mode(
            settings.exactly_once,
            self.sink,
            self.metrics,
            settings.shutdown_grace_seconds,
            batch_size=settings.batch_size,
            max_batches=settings.max_uncommitted_batches,
        )
        self.checkpoint.on_committed = self._apply_committed
        self.source = Source(
            settings,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
            stats_cb=self.metrics.observe_stats,
            error_cb=self._on_error,
            on_commit=self.checkpoint.on_commit,
        )
        self.checkpoint.attach(self.source.consumer)
        self._stop = threading.Event()
        self._pattern = settings.pattern is not None
        self._error_logged: dict[int, float] = {}
        self._debug = settings.log_level == "debug"
        self._timers: dict[str, Any] = {}
        self._assigned: set[tuple[str, int]] = set()
        self._new_sources: set[str] = set()
        self.processed = 0  # events handled, re-reads included (the metrics count committed work)
        self._paused: dict[TP, str] = {}  # partition -> why: "backpressure" or "registry"
        self._holds: dict[TP, int] = {}  # partition -> offset held for a registry retry
        self._registry_failures = 0
        self._registry_retry_at = 0.0
        self._retry_slept = 0.0  # handler retry sleep in the current batch, seconds
        self._retry_budget_ms = settings.retry_budget_ms()
        self.unflushed = 0  # records still in the producer's queue after shutdown
        self._fatal: str | None = None  # set by a client error that retrying cannot fix

    # -- rebalance ------------------------------------------------------------------------
    def _on_assign(self, _c: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("assign").inc()
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        self.health.assigned = len(self._assigned)
        self.health.connected = True
        # Output topics are made in the loop, not here: no blocking admin work in a callback.
        self._new_sources |= {p.topic for p in partitions if not (self._pattern and self.sink.is_own_output(p.topic))}
        self.checkpoint.on_assign(partitions)
        log.info("partitions_assigned", partitions=[f"{p.topic}[{p.partition}]" for p in partitions])

    def _on_revoke(self, _c: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("revoke").inc()
        self.checkpoint.on_revoke(partitions)
        self._release(partitions)
        log.info("partitions_revoked", count=len(partitions))

    def _on_lost(self, _c: Consumer, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("lost").inc()
        self.checkpoint.on_lost(partitions)
        self._release(partitions)
        log.warning("partitions_lost", count=len(partitions))

    def _release(self, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self._assigned.discard((p.topic, p.partition))
            self._paused.pop((p.topic, p.partition), None)
            self._holds.pop((p.topic, p.partition), None)
            self.metrics.forget_partition(p.topic, p.partition)
        self.health.assigned = len(self._assigned)

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.health.connected = False
        if err.code() == KafkaError._AUTHENTICATION and self._fatal is None:
            # Bad credentials do not heal by retrying: stop, and let the orchestrator say so.
            self._fatal = f"authentication failed: {err.str()}"
            self._stop.set()
        # librdkafka repeats connection errors many times a second while a broker is away.
        now = time.monotonic()
        if now - self._error_logged.get(err.code(), -1e9) >= 30 or err.fatal():
            self._error_logged[err.code()] = now
            log.warning("kafka_error", error=str(err), fatal=err.fatal(), repeats_suppressed_for_seconds=30)

    # -- the loop -------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Consume until stopped (signal, `stop()`, or idle timeout); 0 on a clean exit."""
        s = self.settings
        self.source.subscribe()
        engine = self.codec.engine
        log.info(
            "worker_started", settings=s.redacted(), avro_engine=engine, avro_engine_version=engine_version(engine)
        )
        last_work = time.monotonic()
        wait = s.batch_max_wait_ms / 1000
        code = 0
        try:
            while not self._stop.is_set():
                self._flow()
                # Everything paused: serve callbacks without waiting, then wait on acks instead.
                stalled = bool(self._assigned) and self._assigned <= self._paused.keys()
                size = self.checkpoint.poll_size(self._paused)
                msgs = self.source.poll_batch(size, 0 if stalled else wait if self._assigned else 0.25)
                self.health.turned()
                if self._new_sources:
                    self.sink.ensure_topics(sorted(self._new_sources))
                    self._new_sources.clear()
                if msgs:
                    self.health.connected = True
                    self.process(msgs)
                    last_work = time.monotonic()
                self.sink.poll(wait if stalled and not msgs else 0)
                self.checkpoint.poll()
                self.metrics.producer_queue.set(self.sink.queue_length())
                if s.stop_when_idle is not None and not msgs:
                    # Waiting for an assignment (a group join, a dead member's session to expire)
                    # is not idleness: the clock runs only while this member owns partitions.
                    # Paused partitions (held for the registry, or waiting on acks) are not idle either.
                    if self.checkpoint.in_flight() or not self._assigned or self._paused or self._holds:
                        last_work = time.monotonic()
                    elif time.monotonic() - last_work >= s.stop_when_idle:
                        log.info("idle_stop", idle_seconds=s.stop_when_idle)
                        break
        except DeliveryFailed as exc:
            log.error("delivery_failed", error=str(exc))
            code = 1
        except KafkaException as exc:  # a fatal client error (e.g. the idempotent producer fenced)
            log.error("kafka_fatal_error", error=str(exc.args[0]), fatal=True)
            code = 1
        finally:
            if self._fatal is not None:
                log.error("kafka_fatal_error", error=self._fatal, fatal=True)
                code = 1
            self.health.stopping = True
            self._shutdown(clean=code == 0)
        return code

    def _shutdown(self, clean: bool) -> None:
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        try:
            if clean:
                self.checkpoint.close()
        except (DeliveryFailed, KafkaException) as exc:
            log.error("delivery_failed_on_close", error=str(exc))
        finally:
            # close() leaves the group; its revoke callback commits only what was delivered.
            try:
                self.source.close()
            except (DeliveryFailed, KafkaException) as exc:
                log.error("delivery_failed_on_close", error=str(exc))
            try:
                self.unflushed = self.sink.flush(max(0.0, deadline - time.monotonic()))
            except KafkaException as exc:  # the producer is in a fatal state: nothing more goes out
                self.unflushed = self.sink.queue_length()
                log.error("flush_failed_on_close", error=str(exc.args[0]))
            log.info("worker_stopped", processed=self.processed, unflushed=self.unflushed)

    # -- flow control ---------------------------------------------------------------------
    def _flow(self) -> None:
        """Pause partitions read too far past their last commit (bounded re-delivery) or held
        for a Schema Registry retry; resume them when their commits catch up or the retry is due."""
        if self._holds and time.monotonic() >= self._registry_retry_at:
            self.codec.retry_registry()
            retry, self._holds = self._holds, {}
        else:
            retry = {}
        want = {key: "registry" for key in self._holds}
        for key in self.checkpoint.blocked() & self._assigned:
            want.setdefault(key, "backpressure")
        resume = [key for key in self._paused if key not in want]
        pause = [key for key in want if key not in self._paused]
        if resume:
            self.source.resume(resume)
            for key in resume:
                del self._paused[key]
        for key, offset in retry.items():
            if key not in want:  # after resume(): the fetch restarts at the held event
                self.source.seek(key[0], key[1], offset)
        if pause:
            self.source.pause(pause)
            self._paused.update((key, want[key]) for key in pause)
        if resume or pause:
            reasons = Counter(self._paused.values())
            for reason in ("backpressure", "registry"):
                self.metrics.paused_partitions.labels(reason).set(reasons[reason])

    def _hold(self, ticket: Ticket, topic: str, partition: int, offset: int, exc: RegistryUnavailable) -> None:
        """The registry could not serve this event (its schema, or a result's): read the partition again from here
        after a capped backoff. Nothing at or past it is committed meanwhile."""
        ticket.next_offset = offset  # commit up to this event, not past it
        delay = self.settings.retry_delay_ms(self._registry_failures) / 1000
        if not self._holds:
            self._registry_failures += 1
            self._registry_retry_at = time.monotonic() + delay
        self._holds[(topic, partition)] = offset
        self.health.registry_ok = False
        self.metrics.registry_unavailable.inc()
        log.warning(
            "registry_unavailable",
            topic=topic,
            partition=partition,
            offset=offset,
            retry_in_seconds=round(delay, 3),
            error=exc.detail,
        )

    # -- processing -----------------------------------------------------------------------
    def _apply_committed(self, ticket: Ticket) -> None:
        work: _Committed | None = ticket.tally
        if work is None:
            return
        m = self.metrics
        for label, n in work.processed.items():
            m.processed.labels(label).inc(n)
        for stream, n in work.results.items():
            m.results.labels(stream).inc(n)
        for reason, n in work.dead_letters.items():
            m.dead_letters.labels(reason).inc(n)
        if work.outcomes:
            self.business.observe(work.outcomes)

    def process(self, msgs: list[Message]) -> None:
        """Decode, route and forward one batch; hand every record to a ticket."""
        self.checkpoint.begin_batch()
        tally = _Tally()
        self._retry_slept = 0.0
        try:
            self._process(msgs, tally)
        except KafkaException as exc:  # produce() itself refused (e.g. a transaction in error)
            self.checkpoint.fail_batch(exc)
            return
        self.checkpoint.end_batch()
        m = self.metrics
        for label, n in tally.consumed.items():
            m.consumed.labels(label).inc(n)
        for framing, n in tally.decode_errors.items():
            m.decode_errors.labels(framing).inc(n)
        for age in tally.ages:
            m.event_age.observe(age)
        if not self.health.registry_ok and self.codec.registry_healthy:
            self._registry_failures = 0
            self.health.registry_ok = True
            log.info("registry_available")

    def _process(self, msgs: list[Message], tally: _Tally) -> None:
        checkpoint, sink, codec = self.checkpoint, self.sink, self.codec
        consumed, ages = tally.consumed, tally.ages
        holds = self._holds
        now = time.time()
        debug = self._debug
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume_error", error=str(err))
                continue
            topic, partition, offset = cast(str, msg.topic()), cast(int, msg.partition()), cast(int, msg.offset())
            if holds and (topic, partition) in holds:
                continue  # held at an earlier event of this batch: read again after the retry
            ticket = checkpoint.ticket(topic, partition, offset)
            work: _Committed | None = ticket.tally
            if work is None:
                work = ticket.tally = _Committed()
            if self._pattern and sink.is_own_output(topic):
                continue  # a pattern matched one of our own outputs: never loop
            try:
                activity = activity_from_record(codec.decode(msg.value() or b""))
            except RegistryUnavailable as exc:
                self._hold(ticket, topic, partition, offset, exc)
                continue
            except DecodeError as exc:
                consumed["other"] += 1
                tally.decode_errors[exc.framing] += 1
                work.dead_letters[exc.reason] += 1
                sink.dead_letter(msg, topic, "DecodeError", exc.reason, str(exc), ticket)
                log.warning("dead_letter", reason=exc.reason, topic=topic, partition=partition, offset=offset)
                continue
            label = label_of(activity.type)
            consumed[label] += 1
            try:
                results = self._handle(activity)
            except HandlerFailed as exc:
                work.dead_letters["handler_error"] += 1
                sink.dead_letter(msg, topic, "HandlerError", "handler_error", str(exc), ticket, activity)
                log.warning(
                    "dead_letter",
                    reason="handler_error",
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    activity_id=activity.id,
                    activity_type=label,
                )
                continue
            try:
                sink.forward(topic, activity, results, ticket)
            except RegistryUnavailable as exc:  # a result schema could not be registered
                self._hold(ticket, topic, partition, offset, exc)
                continue
            if debug:  # explains one event when asked (ACTIVITY_LOG_LEVEL=debug); free otherwise
                log.debug(
                    "event_processed",
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    activity_id=activity.id,
                    activity_type=label,
                    results=[r.stream for r in results],
                )
            work.outcomes += results
            results_by_stream = work.results
            for r in results:
                results_by_stream[r.stream] += 1
            work.processed[label] += 1
            self.processed += 1
            ages.append(now - activity.created_at_ms / 1000)

    def _handle(self, activity: Activity) -> list[Result]:
        """Run the handler with bounded retries and exponential backoff."""
        family = activity.family
        timer = self._timers.get(family)
        if timer is None:  # labels() is a locked dict lookup: once per family, not per event
            timer = self._timers[family] = self.metrics.handler_duration.labels(family)
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                results: list[Result] = self.router.route(activity)
                timer.observe(time.perf_counter() - started)
                return results
            except Exception as exc:  # a handler bug must not stall the partition
                if attempt + 1 >= attempts:
                    raise HandlerFailed(f"{type(exc).__name__}: {exc}"[:500]) from exc
                self.metrics.retries.labels(family).inc()
                # Capped per retry, and per batch: past the budget, retries go without delay so
                # the loop keeps turning (liveness, max.poll.interval.ms).
                delay = min(self.settings.retry_delay_ms(attempt), self._retry_budget_ms - self._retry_slept * 1000)
                if delay > 0:
                    time.sleep(delay / 1000)
                    self._retry_slept += delay / 1000
        raise AssertionError("unreachable")  # pragma: no cover
