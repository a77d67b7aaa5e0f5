"""The contract's names, declared once: Avro namespaces, the bookkeeping fields every data
record carries, the result streams with the record each one carries, the header names on the
wire and the rules that name output and dead-letter topics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

NAMESPACE: Final = "voucherify.activity"
RESULTS_NAMESPACE: Final = f"{NAMESPACE}.results"
ENVELOPE: Final = f"{NAMESPACE}.CustomerActivity"
GENERIC: Final = f"{NAMESPACE}.GenericActivityData"
EVENT_SOURCE: Final = f"{NAMESPACE}.EventSource"

# Members of every data record that keep the JSON round trip exact (see devtools/schemagen).
JSON_NULLS: Final = "_json_nulls"  # keys whose JSON value was an explicit null
EXTRA: Final = "_extra"  # JSON members the schema does not know, as JSON object text

# stream (topic suffix) -> full name of its record in avro/results/
STREAM_SCHEMAS: Final[dict[str, str]] = {
    "lifecycle": f"{RESULTS_NAMESPACE}.CustomerLifecycleChange",
    "redemptions": f"{RESULTS_NAMESPACE}.RedemptionRecord",
    "loyalty": f"{RESULTS_NAMESPACE}.LoyaltyLedgerEntry",
    "gift-credits": f"{RESULTS_NAMESPACE}.GiftCreditEntry",
    "notifications": f"{RESULTS_NAMESPACE}.NotificationOutcome",
    "segments": f"{RESULTS_NAMESPACE}.SegmentMembershipChange",
    "publications": f"{RESULTS_NAMESPACE}.PublicationOutcome",
    "consents": f"{RESULTS_NAMESPACE}.ConsentChange",
    "referrals": f"{RESULTS_NAMESPACE}.Referral",
    "custom-events": f"{RESULTS_NAMESPACE}.CustomEventRecord",
    "rewards": f"{RESULTS_NAMESPACE}.RewardGranted",
    "orders": f"{RESULTS_NAMESPACE}.OrderEvent",
    "loyalty-tiers": f"{RESULTS_NAMESPACE}.LoyaltyTierChange",
    "reward-redemptions": f"{RESULTS_NAMESPACE}.RewardRedemption",
    "validations": f"{RESULTS_NAMESPACE}.ValidationOutcome",
    "holders": f"{RESULTS_NAMESPACE}.HolderAssignment",
    "other": f"{RESULTS_NAMESPACE}.ForwardedActivity",
}
STREAMS: Final[tuple[str, ...]] = tuple(STREAM_SCHEMAS)
RESULT_SCHEMAS: Final[tuple[str, ...]] = tuple(STREAM_SCHEMAS.values())

# Header names on the wire: input events, results and dead letters. Declared here only.
H_ACTIVITY_ID: Final = "activity-id"
H_ACTIVITY_TYPE: Final = "activity-type"
H_AVRO_SCHEMA: Final = "avro-schema"  # a result's record name
H_DELIVERY_ID: Final = "voucherify-delivery-id"  # the webhook send-out (`whs_…`) an input came from
H_PROJECT_ID: Final = "voucherify-project-id"  # the Voucherify project (`proj_…`) it belongs to
H_INGEST_SOURCE: Final = "activity-source"  # how it entered: webhook, backfill, produce
DLQ_PREFIX: Final = "dlq-"  # every dead-letter header starts so; a replay drops them
H_DLQ_ERROR_CLASS: Final = "dlq-error-class"
H_DLQ_REASON_CODE: Final = "dlq-reason-code"
H_DLQ_REASON: Final = "dlq-reason"
H_DLQ_SOURCE_TOPIC: Final = "dlq-source-topic"
H_DLQ_SOURCE_PARTITION: Final = "dlq-source-partition"
H_DLQ_SOURCE_OFFSET: Final = "dlq-source-offset"
H_DLQ_FAILED_AT: Final = "dlq-failed-at"
H_DLQ_REPLAY_COUNT: Final = "dlq-replay-count"
H_DLQ_VALUE_OMITTED: Final = "dlq-value-omitted"
H_DLQ_VALUE_SIZE: Final = "dlq-value-size"
H_DLQ_SIGNATURE: Final = "dlq-signature"  # the gateway's dead letters: "verified" (only signed bodies are kept)
DLQ_TOO_LARGE: Final = "too-large"  # H_DLQ_VALUE_OMITTED: the original exceeded the producer's limit
# Headers the sink writes itself: names, numbers and codes, never personal data.
TRUSTED_HEADERS: Final = frozenset(
    {
        H_DLQ_ERROR_CLASS,
        H_DLQ_REASON_CODE,
        H_DLQ_SOURCE_TOPIC,
        H_DLQ_SOURCE_PARTITION,
        H_DLQ_SOURCE_OFFSET,
        H_DLQ_FAILED_AT,
        H_DLQ_VALUE_OMITTED,
        H_DLQ_VALUE_SIZE,
        H_DLQ_REPLAY_COUNT,
        H_DLQ_SIGNATURE,
        H_ACTIVITY_ID,
        H_ACTIVITY_TYPE,
        H_AVRO_SCHEMA,
    }
)

# Topic names. Results go to `<prefix><stream>`, the prefix `<input>.` unless one is given;
# dead letters to `<input>.dlq` unless a dead-letter topic is given.
DLQ_SUFFIX: Final = ".dlq"
# The gateway's dead letters (signed deliveries it cannot map): `<ingest topic>.gateway.dlq`
# unless given; it ends in DLQ_SUFFIX, so a worker's broad pattern skips it.
GATEWAY_DLQ_SUFFIX: Final = f".gateway{DLQ_SUFFIX}"


def output_topic(source_topic: str, stream: str, prefix: str | None = None) -> str:
    return f"{source_topic}.{stream}" if prefix is None else f"{prefix}{stream}"


def dead_letter_topic(source_topic: str, dlq_topic: str | None = None) -> str:
    return dlq_topic or f"{source_topic}{DLQ_SUFFIX}"


def is_own_output(topic: str, streams: Iterable[str], prefix: str | None = None, dlq_topic: str | None = None) -> bool:
    """True for a topic named by the rules above (an input pattern may match our own outputs):
    with a prefix or dead-letter topic given, exactly those; by default any `<topic>.<stream>`
    and any `<topic>.dlq`. The gateway's default dead-letter topics are never inputs."""
    if topic.endswith(GATEWAY_DLQ_SUFFIX) or topic == dlq_topic or (dlq_topic is None and topic.endswith(DLQ_SUFFIX)):
        return True
    if prefix is not None:
        return topic.startswith(prefix) and topic[len(prefix) :] in set(streams)
    return any(topic.endswith(f".{stream}") for stream in streams)
