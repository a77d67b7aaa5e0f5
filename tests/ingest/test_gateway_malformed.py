"""1,000 malformed requests (a seeded generator: bodies, signatures, content types): unsigned,
wrongly signed or of the wrong content type, each is answered with a clear 4xx and stored
nowhere; signed, each is kept in the gateway's dead-letter topic and answered 202. Nothing
reaches the input topic, and the gateway still serves a good one."""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections import Counter
from typing import Any

import pytest

from consumer.contract import H_ACTIVITY_ID
from tests.support.gateway import SECRET, body_of, corpus, delivery, get, post, running_gateway, settings
from tests.support.workers import read_all

pytestmark = pytest.mark.integration

N = 1000
REQUIRED = ("id", "project_id", "created_at", "type", "data", "source", "event")
NOT_TEXT = [None, 7, 1.5, True, [], {}, ""]


def _valid(rng: random.Random) -> dict[str, Any]:
    activity = copy.deepcopy(rng.choice(corpus()))
    activity["id"] = f"evcus_{uuid.uuid4().hex[:18]}"
    return delivery(activity, rng.choice(["webhook", "distribution"]))


def _mutated_doc(rng: random.Random) -> Any:
    doc = _valid(rng)
    how = rng.randrange(8)
    if how == 0:
        del doc[rng.choice(REQUIRED)]
    elif how == 1:
        doc[rng.choice(["id", "project_id"])] = rng.choice(NOT_TEXT)
    elif how == 2:
        doc["event"][rng.choice(["id", "type", "created_at"])] = rng.choice(NOT_TEXT)
    elif how == 3:
        doc["event"] = rng.choice([None, "evt", [doc["event"]], 3])
    elif how == 4:
        doc["source"] = rng.choice([None, {"object": "ftp"}, {}, "webhook"])
    elif how == 5:
        doc["data"] = rng.choice([None, "data", [1], 2])
    elif how == 6:
        doc["event"]["created_at"] = rng.choice(["yesterday", "2026-13-45T99:00:00Z", "1700000000"])
    else:
        doc = rng.choice([[doc], "a string", 42, None, True])
    return doc


def _case(rng: random.Random, i: int) -> tuple[str, bytes, dict[str, Any]]:
    """(what, body, post() keyword arguments) for malformed request number i."""
    kind = i % 10
    if kind == 0:  # garbage bytes, unsigned or signed with a made-up value
        body = rng.randbytes(rng.randrange(0, 300))
        return "garbage unsigned", body, {"secret": None, "signature": rng.choice([None, "0" * 64, "zz"])}
    if kind == 1:  # a valid delivery, but a signature that is not the right one
        body = body_of(_valid(rng), rng.random() < 0.5)
        sig = rng.choice(["", "ab" * 31, "g" * 64, "f" * 64, " " + "1" * 64, "ab" * 32 + "00"])
        return "bad signature", body, {"signature": sig}
    if kind == 2:  # signed bytes that are not JSON: truncated, invalid UTF-8, nested too deep
        valid = body_of(_valid(rng), rng.random() < 0.5)
        body = rng.choice([valid[: rng.randrange(1, len(valid) - 1)], b"\xff\xfe" + valid, b"[" * 100_000])
        return "signed non-JSON", body, {}
    if kind == 3:  # the wrong content type, correctly signed
        ctype = rng.choice(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None])
        return "content type", body_of(_valid(rng), False), {"content_type": ctype}
    if kind == 4:  # a signature over another body
        return "other body", body_of(_valid(rng), False), {"signed": body_of(_valid(rng), False)}
    return "signed non-delivery", body_of(_mutated_doc(rng), rng.random() < 0.5), {}


def test_a_thousand_malformed_requests_are_refused_or_dead_lettered_and_never_reach_the_input(
    kafka_bootstrap: str, new_topic: str
) -> None:
    rng = random.Random(20261201)
    seen: Counter[tuple[str, int]] = Counter()
    kept: set[bytes] = set()
    with running_gateway(settings(kafka_bootstrap, new_topic, max_body_bytes=256 * 1024)) as gw:
        for i in range(N):
            what, body, kw = _case(rng, i)
            answer = post(gw.port, body, secret=kw.pop("secret", SECRET), **kw)
            if what.startswith("signed"):
                assert answer.status == 202 and answer.body["status"] == "dead_lettered", (i, what, answer, body[:80])
                kept.add(body)
            else:
                assert 400 <= answer.status < 500, (i, what, answer, body[:80])
            assert answer.body.get("reason"), (i, what, answer)
            seen[(what, answer.status)] += 1
        assert get(gw.port, "/healthz")[0] == 200 and get(gw.port, "/readyz")[0] == 200
        good = _valid(rng)
        assert post(gw.port, body_of(good, False)).status == 200  # still serving
        answered = sum(seen.values())
        assert gw.metric("activity_gateway_requests_total", {"outcome": "accepted", "status": "200"}) == 1
    print(json.dumps({f"{w} -> {s}": n for (w, s), n in sorted(seen.items())}, indent=1))
    assert answered == N
    assert {s for (_, s) in seen} == {202, 401, 415}
    records = read_all(kafka_bootstrap, [new_topic])
    assert [r.headers[H_ACTIVITY_ID].decode() for r in records] == [good["event"]["id"]]
    dead_letters = [r.value for r in read_all(kafka_bootstrap, [f"{new_topic}.gateway.dlq"])]
    assert len(dead_letters) == len(set(dead_letters)) and set(dead_letters) == kept  # each kept once, as sent
