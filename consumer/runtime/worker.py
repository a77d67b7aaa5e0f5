"""The worker: one consumer-group member, the loop that wires source -> codec -> router -> sink -> checkpoint.

`step` decides each event's outcome; the loop hands it to the sink, checkpoint, gate and tallies."""

from __future__ import annotations

import threading
import time
from typing import cast

from confluent_kafka import KafkaException, Message
from prometheus_client import CollectorRegistry

from consumer.catalogue import OTHER, label_of
from consumer.config import Settings
from consumer.contract import STREAMS
from consumer.pipeline.at_least_once import AtLeastOnce
from consumer.pipeline.checkpoint import CallGuard, Checkpoint, Hooks
from consumer.pipeline.codec import AvroCodec, RegistryUnavailable, SchemaStore
from consumer.pipeline.codec.engines import version as engine_version
from consumer.pipeline.codec.registry import connect
from consumer.pipeline.codec.results import ResultEncoder
from consumer.pipeline.exactly_once import ExactlyOnce
from consumer.pipeline.gate import Gate, GatePolicy
from consumer.pipeline.retrying import RetryingRouter
from consumer.pipeline.router import Router
from consumer.pipeline.sink import Sink
from consumer.pipeline.source import Source
from consumer.pipeline.step import DeadLetter, Forward, Hold, Skip, step
from consumer.pipeline.tickets import DeliveryFailed, Ticket
from consumer.runtime.member import Member
from consumer.runtime.watchdog import CallWatchdog
from consumer.telemetry.business_metrics import BusinessMetrics
from consumer.telemetry.logs import get as get_logger
from consumer.telemetry.metrics import PipelineMetrics, new_registry
from consumer.telemetry.probes import Health
from consumer.telemetry.tallies import BatchTally, Committed, Tallies

log = get_logger("consumer.runtime.worker")


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
        guard: CallGuard | None = None,
    ) -> None:
        """`guard` bounds the blocking librdkafka calls (default: the runtime's watchdog, which
        ends the process when one outlives its timeout)."""
        self.settings = settings
        guard = guard or CallWatchdog(margin_s=max(5.0, settings.shutdown_grace_seconds))
        self.registry = registry or new_registry()
        self.metrics = PipelineMetrics(self.registry)
        self.business = BusinessMetrics(self.registry)
        self.tallies = Tallies(self.metrics, self.business)
        self.health = health or Health()
        store = SchemaStore()
        schema_registry = connect(settings.schema_registry_url)  # one client: event lookups and result registrations
        self.codec = codec or AvroCodec(store, registry=schema_registry, engine=settings.avro_engine)
        self.tallies.engine(self.codec.engine, engine_version(self.codec.engine))
        self.router = RetryingRouter(router or Router(), settings, self.metrics)
        encoder = ResultEncoder(
            store,
            engine=self.codec.engine,
            framing=settings.output_framing,
            registry=schema_registry if settings.output_framing == "confluent" else None,
        )
        self.sink = Sink(settings, encoder, STREAMS, transactional=settings.exactly_once)
        policy = GatePolicy(settings.retry_delay_ms)
        self.checkpoint = _checkpoint(settings, self.sink, self.metrics, self.tallies, policy, guard)
        self._stop = threading.Event()
        own = self._own_output = self.sink.is_own_output if settings.pattern is not None else None
        m = self.member = Member(self.checkpoint, policy, self.tallies, self.metrics, self.health, own, self._stop.set)
        self.source = Source(
            settings,
            on_assign=m.on_assign,
            on_revoke=m.on_revoke,
            on_lost=m.on_lost,
            stats_cb=self.member.on_stats,
            error_cb=m.on_error,
            on_commit=self.checkpoint.on_commit,
        )
        self.checkpoint.attach(self.source)
        self.gate = Gate(self.source, self.codec, self.metrics, self.health, policy)
        self._debug = settings.log_level == "debug"
        self.processed = 0  # events handled, re-reads included (the metrics count committed work)
        self.unflushed = 0  # records still in the producer's queue after shutdown

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
        gate, assigned, new_sources = self.gate, self.member.assigned, self.member.new_sources
        try:
            while not self._stop.is_set():
                gate.turn(self.checkpoint.blocked() & assigned)
                # Everything paused: serve callbacks without waiting, then wait on acks instead.
                stalled = gate.policy.stalled(assigned)
                size = self.checkpoint.poll_size(gate.paused)
                msgs = self.source.poll_batch(size, 0 if stalled else wait if assigned else 0.25)
                self.health.turned()
                if new_sources:
                    self.sink.ensure_topics(sorted(new_sources))
                    new_sources.clear()
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
                    if self.checkpoint.in_flight() or not assigned or gate.policy.busy:
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
            if self.member.fatal is not None:
                log.error("kafka_fatal_error", error=self.member.fatal, fatal=True)
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

    # -- processing -----------------------------------------------------------------------
    def process(self, msgs: list[Message]) -> None:
        """Decode, route and forward one batch; hand every record to a ticket."""
        self.checkpoint.begin_batch()
        tally = BatchTally()
        self.router.new_batch()
        try:
            self._process(msgs, tally)
        except KafkaException as exc:  # produce() itself refused (e.g. a transaction in error)
            self.checkpoint.fail_batch(exc)
            return
        self.checkpoint.end_batch()
        self.tallies.batch(tally)
        self.gate.settle()

    def _process(self, msgs: list[Message], tally: BatchTally) -> None:
        checkpoint, sink, codec, router, own = self.checkpoint, self.sink, self.codec, self.router, self._own_output
        holds = self.gate.holds
        now = time.time()
        for msg in msgs:
            if holds and msg.error() is None and (msg.topic(), msg.partition()) in holds:
                continue  # held at an earlier event of this batch: read again after the retry
            outcome = step(msg, codec, router, own)
            topic, partition, offset = cast(str, msg.topic()), cast(int, msg.partition()), cast(int, msg.offset())
            if type(outcome) is Skip:
                if outcome.reason == "consume_error":
                    log.warning("consume_error", error=outcome.detail)
                if outcome.read_past:  # our own output: committed past, nothing produced
                    checkpoint.ticket(topic, partition, offset)
                continue
            ticket = checkpoint.ticket(topic, partition, offset)
            work: Committed = ticket.tally or Committed()
            ticket.tally = work
            if type(outcome) is Forward:
                activity, results = outcome.activity, outcome.results
                label = label_of(activity.type)
                tally.consumed[label] += 1
                try:
                    sink.forward(topic, activity, results, ticket)
                except RegistryUnavailable as exc:  # a result schema could not be registered
                    self._hold(ticket, Hold((topic, partition), offset, exc.detail))
                    continue
                if self._debug:  # explains one event when asked (ACTIVITY_LOG_LEVEL=debug); free otherwise
                    where = {"topic": topic, "partition": partition, "offset": offset}
                    streams = [r.stream for r in results]
                    log.debug("event_processed", **where, activity_id=activity.id, activity_type=label, results=streams)
                self.tallies.forwarded(work, label, results)
                self.processed += 1
                tally.ages.append(now - activity.created_at_ms / 1000)
            elif type(outcome) is DeadLetter:
                self._dead_letter(msg, topic, outcome, ticket, tally, work)
            else:
                self._hold(ticket, cast(Hold, outcome))

    def _dead_letter(
        self, msg: Message, topic: str, out: DeadLetter, ticket: Ticket, tally: BatchTally, work: Committed
    ) -> None:
        activity = out.activity
        label = OTHER if activity is None else label_of(activity.type)
        tally.consumed[label] += 1
        if out.framing is not None:
            tally.decode_errors[out.framing] += 1
        work.dead_letters[out.reason_code] += 1
        self.sink.dead_letter(msg, topic, out.error_class, out.reason_code, out.reason, ticket, activity)
        about = {} if activity is None else {"activity_id": activity.id, "activity_type": label}
        log.warning(
            "dead_letter", reason=out.reason_code, topic=topic, partition=msg.partition(), offset=msg.offset(), **about
        )

    def _hold(self, ticket: Ticket, hold: Hold) -> None:
        """Commit up to the held event, not past it; the gate reads the partition again from it."""
        ticket.next_offset = hold.offset
        self.gate.hold(hold)


def _checkpoint(
    settings: Settings, sink: Sink, metrics: PipelineMetrics, tallies: Tallies, policy: GatePolicy, guard: CallGuard
) -> Checkpoint:
    """The guarantee's checkpoint, with everything it calls handed in."""
    common: Hooks = {
        "guard": guard,
        "batch_size": settings.batch_size,
        "on_committed": lambda ticket: tallies.committed(ticket.tally),
        "on_rewound": policy.rewound,  # a registry hold must not seek past a partition sought back
    }
    grace = settings.shutdown_grace_seconds
    if settings.exactly_once:
        return ExactlyOnce(sink, metrics, grace, **common)
    return AtLeastOnce(sink, metrics, grace, max_batches=settings.max_uncommitted_batches, **common)
