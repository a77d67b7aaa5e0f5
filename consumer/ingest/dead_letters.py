"""The gateway's dead letters: a delivery Voucherify signed that the mapping cannot read.

A valid signature proves Voucherify sent the body, so it is kept, never refused: answering 4xx
loses it, and twelve refusals disable the webhook. The record holds the raw body unchanged,
keyed by project, with headers that say why and when; `dlq remap` maps it again after a fix.
Pure: the gateway produces the record, the remap reads it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

from consumer.contract import (
    H_DELIVERY_ID,
    H_DLQ_ERROR_CLASS,
    H_DLQ_FAILED_AT,
    H_DLQ_REASON,
    H_DLQ_REASON_CODE,
    H_DLQ_SIGNATURE,
    H_INGEST_SOURCE,
    H_PROJECT_ID,
)
from consumer.ingest.records import WEBHOOK, InputRecord
from consumer.pipeline.codec.delivery_json import DeliveryError

SIGNATURE_VERIFIED: Final = b"verified"
_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def readable_id(doc: Any, key: str) -> str | None:
    """`doc[key]` where it is an id-shaped string (a header value, so never free text)."""
    value = doc.get(key) if isinstance(doc, dict) else None
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def dedupe_key(body: bytes) -> tuple[str, str]:
    """One dead letter per body: Voucherify's re-sends of it are answered without a second copy."""
    return ("dead-letter", hashlib.sha256(body).hexdigest())


def dead_letter(
    body: bytes, error: DeliveryError, *, received_at_ms: int, project_id: str | None, delivery_id: str | None
) -> InputRecord:
    """The record for an unreadable but authentic delivery: the body as received."""
    headers = [
        (H_DLQ_REASON_CODE, error.code.encode()),
        (H_DLQ_REASON, str(error).encode()[:1000]),
        (H_DLQ_ERROR_CLASS, type(error).__name__.encode()),
        (H_DLQ_FAILED_AT, str(received_at_ms).encode()),
        (H_DLQ_SIGNATURE, SIGNATURE_VERIFIED),
        (H_INGEST_SOURCE, WEBHOOK.encode()),
    ]
    if project_id:
        headers.append((H_PROJECT_ID, project_id.encode()))
    if delivery_id:
        headers.append((H_DELIVERY_ID, delivery_id.encode()))
    return InputRecord(project_id, body, headers)
