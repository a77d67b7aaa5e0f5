"""Today's catalogue on a real broker: a stream holding every one of the 74 types (and the
seed's consents), some unknown types and some poison. Every event is accounted for once,
each catalogue type's result lands on its typed stream as the record that stream carries, and
`.other` receives the unknown types only."""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader

from consumer.catalogue import KNOWN_TYPES, NOTIFICATION_CHANNELS, canonical
from consumer.contract import H_ACTIVITY_ID, H_ACTIVITY_TYPE
from consumer.devtools.corpus import OPENAPI
from tests.support.workers import (
    REPO,
    make_stream,
    output_topics,
    produce,
    read_all,
    start_worker,
    templates,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

RESULTS = REPO / "avro" / "results"


def stream_of(event_type: str) -> str:
    """Where a catalogue type's result belongs: the table in the README, written out again."""
    family = event_type.split(".")[1]
    if family in NOTIFICATION_CHANNELS:
        return "notifications"
    by_prefix = {
        "customer.order.": "orders",
        "customer.loyalty.": "loyalty-tiers",
        "customer.reward_redemptions.": "reward-redemptions",
        "customer.validation.": "validations",
        "customer.holder.": "holders",
        "customer.redemption.": "redemptions",
        "customer.voucher.loyalty_card.": "loyalty",
        "customer.voucher.gift.": "gift-credits",
        "customer.rewarded": "rewards",
        "customer.segment.": "segments",
        "customer.publication.": "publications",
        "customer.consents.": "consents",
        "customer.referred": "referrals",
        "customer.custom_event": "custom-events",
    }
    for prefix, stream in by_prefix.items():
        if event_type.startswith(prefix):
            return stream
    assert event_type in {"customer.created", "customer.updated", "customer.deleted", "customer.confirmed"} | {
        "customer.voucher.deleted"
    }, event_type
    return "lifecycle"


RECORD_OF = {
    "orders": "OrderEvent",
    "loyalty-tiers": "LoyaltyTierChange",
    "reward-redemptions": "RewardRedemption",
    "validations": "ValidationOutcome",
    "holders": "HolderAssignment",
    "notifications": "NotificationOutcome",
    "loyalty": "LoyaltyLedgerEntry",
    "lifecycle": "CustomerLifecycleChange",
}


def _decode(record_name: str, value: bytes) -> dict[str, Any]:
    schema = parse_schema(json.loads((RESULTS / f"{record_name}.avsc").read_text()))
    assert value[:2] == b"\xc3\x01"  # single-object encoding: magic, 8-byte fingerprint, body
    decoded: dict[str, Any] = schemaless_reader(io.BytesIO(value[10:]), schema, None)
    return decoded


def test_every_catalogue_type_lands_on_its_typed_stream(kafka_bootstrap: str, new_topic: str, tmp_path: Path) -> None:
    current = set(json.loads(OPENAPI.read_text())["CustomerActivity.type"])
    base = templates()
    sent_types = {canonical(e["type"]) for e in base}
    assert current <= sent_types and len(current) == 74
    rounds = 3
    stream = make_stream(rounds * len(base), unknown=9, poison=4)
    produce(kafka_bootstrap, new_topic, stream)
    log = tmp_path / "worker.log"
    proc = start_worker(kafka_bootstrap, new_topic, f"catalogue-{uuid.uuid4().hex[:10]}", log_path=log)
    try:
        assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]
    except subprocess.TimeoutExpired:
        proc.kill()
        raise

    # what was sent: make_stream cycles through the templates in order, then unknown, then poison
    type_of: dict[str, str] = {}
    for i, (activity_id, _, _) in enumerate(stream[: rounds * len(base)]):
        type_of[activity_id] = canonical(base[i % len(base)]["type"])
    unknown = {a for a, _, _ in stream if a.startswith("evcus_unk")}
    poison = {a for a, _, _ in stream if a.startswith("evcus_bad")}

    records = read_all(kafka_bootstrap, output_topics(kafka_bootstrap, new_topic))
    by_topic: dict[str, list[Any]] = {}
    for r in records:
        by_topic.setdefault(r.topic.removeprefix(new_topic + "."), []).append(r)

    # conservation: each event once, results or a dead letter, nothing else
    seen = Counter(r.headers[H_ACTIVITY_ID].decode() for r in records if H_ACTIVITY_ID in r.headers)
    assert set(seen) == set(type_of) | unknown | poison
    assert {a: n for a, n in seen.items() if n != 1} == {}
    assert {r.headers[H_ACTIVITY_ID].decode() for r in by_topic["dlq"]} == poison
    assert {r.headers[H_ACTIVITY_ID].decode() for r in by_topic.get("other", [])} == unknown

    landed: dict[str, Counter[str]] = {}
    for name, recs in by_topic.items():
        if name in ("dlq", "other"):
            continue
        for r in recs:
            activity_id = r.headers[H_ACTIVITY_ID].decode()
            event_type = type_of[activity_id]
            assert r.headers[H_ACTIVITY_TYPE].decode() == event_type
            landed.setdefault(event_type, Counter())[name] += 1
            if name in RECORD_OF:  # the streams this issue added or extended
                value = _decode(RECORD_OF[name], r.value)
                assert value["activity_id"] == activity_id
                assert value["activity_type"] == event_type
    assert set(landed) == set(type_of.values()) == KNOWN_TYPES
    wrong = {t: dict(c) for t, c in landed.items() if c != Counter({stream_of(t): rounds})}
    assert wrong == {}
    typed_streams = {stream_of(t) for t in KNOWN_TYPES}
    assert typed_streams >= set(RECORD_OF)
    assert len(records) == len(type_of) + len(unknown) + len(poison)
