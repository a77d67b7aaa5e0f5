"""`dlq remap`: the gateway's dead letters through its current mapping, after a fix.

Each kept body is read as a live delivery is (the same mapping, record and topic rule) and
written to the input topic exactly as the gateway would have written it; a delivery that
maps to a non-customer event writes nothing, as live. One that still does not map stays in
the dead-letter topic, counted by reason. The position in the dead-letter topic is committed
for the remap's own consumer group once each batch is delivered: a second run writes nothing,
and a crash writes at most one batch twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from consumer.cli.dlq_read import DeadLetter, DlqError, Scan
from consumer.config import GatewaySettings
from consumer.contract import H_DLQ_SIGNATURE
from consumer.ingest.records import InputRecord, webhook_record
from consumer.kafka_io import produce_waiting
from consumer.pipeline.codec import AvroCodec, EncodeError, RegistryUnavailable
from consumer.pipeline.codec.delivery_json import NOT_ENCODABLE, Delivery, DeliveryError, loads, parse

DELIVERY_TIMEOUT_S = 60.0
MapDelivery = Callable[[Any], Delivery]


@dataclass
class RemapTally:
    scanned: int = 0
    remapped: int = 0
    ignored: int = 0  # maps now, to a non-customer event: nothing to write, as live
    not_gateway: int = 0  # no signature header: not a gateway dead letter, passed over
    unmapped: Counter[str] = field(default_factory=Counter)  # still unreadable, by reason; left in place

    def line(self, dry_run: bool) -> str:
        verb = "would remap" if dry_run else "remapped"
        still = ", ".join(f"{code} {n}" for code, n in self.unmapped.most_common()) or "none"
        return (
            f"{verb} {self.remapped}, non-customer {self.ignored}, still unmapped {sum(self.unmapped.values())}"
            f" ({still}), not from the gateway {self.not_gateway} of {self.scanned} scanned"
        )


def remap(
    scan: Scan,
    settings: GatewaySettings,
    codec: AvroCodec,
    *,
    producer_config: dict[str, Any] | None,
    mapping: MapDelivery = parse,
    out: IO[str],
) -> RemapTally:
    """Remap what maps now (dry run: `producer_config` None, print and commit nothing); raise
    `DlqError` when a record is not delivered or the registry is away (positions stay where the
    last fully delivered batch left them)."""
    producer = None if producer_config is None else Producer(producer_config)
    tally = RemapTally()
    failures: list[str] = []  # any one ends the run before its batch is committed

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(f"{msg.topic()}: {err.str()}")

    try:
        for batch in scan.batches():
            for d in batch:
                tally.scanned += 1
                scan.advance(d)
                read = _read(d, codec, mapping, tally)
                if read is None:
                    continue
                delivery, record = read
                if record is None:
                    tally.ignored += 1
                    continue
                topic = settings.topic_for(delivery.project_id)
                tally.remapped += 1
                if producer is None:
                    out.write(f"[{d.partition}]@{d.offset}  {d.reason_code}  {delivery.event_type} -> {topic}\n")
                    continue
                try:
                    produce_waiting(producer, topic, record.value, record.key, record.headers, delivered)
                except KafkaException as exc:
                    raise DlqError(f"cannot write [{d.partition}]@{d.offset} to {topic}: {exc.args[0].str()}") from None
            if producer is not None:
                _deliver(producer, failures)
                if offsets := scan.offsets():
                    scan.consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        if producer is not None:
            producer.flush(5)
    return tally


def _read(
    d: DeadLetter, codec: AvroCodec, mapping: MapDelivery, tally: RemapTally
) -> tuple[Delivery, InputRecord | None] | None:
    """The delivery a gateway dead letter holds and its input record (None for a non-customer
    event), when the mapping reads it now and the contract holds it, as live."""
    if d.header(H_DLQ_SIGNATURE) is None or d.value is None:
        tally.not_gateway += 1
        return None
    try:
        delivery = mapping(loads(d.value))
        return delivery, webhook_record(codec, delivery) if delivery.is_customer_event else None
    except DeliveryError as exc:
        tally.unmapped[exc.code] += 1
    except EncodeError:
        tally.unmapped[NOT_ENCODABLE] += 1
    except RegistryUnavailable as exc:  # not the record's fault: stop, commit nothing past it
        raise DlqError(f"the schema registry is unavailable ({type(exc).__name__}); run again later") from None
    return None


def _deliver(producer: Producer, failures: list[str]) -> None:
    left = producer.flush(DELIVERY_TIMEOUT_S)
    if failures or left:
        first = failures[0] if failures else f"{left} still in flight after {DELIVERY_TIMEOUT_S:.0f}s"
        raise DlqError(
            f"{len(failures) or left} remapped record(s) not delivered ({first}); "
            "positions were not committed past them, so running again writes them"
        )
