"""The contract's names, declared once: Avro namespaces, the bookkeeping fields every data
record carries, and the result streams with the record each one carries."""

from __future__ import annotations

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
DLQ_SUFFIX: Final = "dlq"  # `<input>.dlq` unless --dlq-topic names another

# Header names on the wire: input events, results and dead letters. Declared here only.
H_ACTIVITY_ID: Final = "activity-id"
H_ACTIVITY_TYPE: Final = "activity-type"
H_AVRO_SCHEMA: Final = "avro-schema"  # a result's record name
H_DELIVERY_ID: Final = "voucherify-delivery-id"  # the webhook send-out (`whs_…`) an input came from
H_PROJECT_ID: Final = "voucherify-project-id"  # the Voucherify project (`proj_…`) it belongs to
H_INGEST_SOURCE: Final = "activity-source"  # how it entered: webhook, backfill, produce
DLQ_PREFIX: Final = "dlq-"
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
