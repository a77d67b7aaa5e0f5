"""customer.validation.succeeded / failed -> ValidationOutcome (`validations`).

The published shape names the redeemables but no reason; Voucherify's validation responses
put one on each inapplicable redeemable (`result.error`), and a payload that carries it keeps
it in `_extra`, so the first one found is the failure code.
"""

from __future__ import annotations

from typing import Any

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import Data, bounded_text, emit, first, obj, text
from consumer.pipeline.handlers._json import member


def _items(validation: Data | None, key: str) -> list[Data]:
    items = validation.get(key) if validation is not None else None
    return [i for i in items if type(i) is dict] if type(items) is list else []


def _ids(items: list[Data]) -> list[str]:
    return [i for i in (text(item, "id") for item in items) if i is not None]


def _error(items: list[Data]) -> Data | None:
    for item in items:
        error = obj(member(item, "result"), "error")
        if error is not None:
            return error
    return None


def validation(activity: Activity) -> list[Result]:
    data = activity.data
    v = obj(data, "validation")
    inapplicable = _items(v, "inapplicable_redeemables")
    result = activity.canonical_type.rsplit(".", 1)[1]
    error = _error(inapplicable) if result == "failed" else None
    value: dict[str, Any] = {
        "result": result,
        "validation_id": text(v, "id"),
        "session_id": text(v, "session_id"),
        "status": text(v, "status"),
        "redeemable_ids": _ids(_items(v, "redeemables")),
        "inapplicable_ids": _ids(inapplicable),
        "skipped_ids": _ids(_items(v, "skipped_redeemables")),
        "failure_code": text(error, "key"),
        "failure_message": bounded_text(error.get("message")) if error is not None else None,
    }
    cid = first(text(obj(data, "customer"), "id"), text(v, "customer_id"))
    return [emit(activity, "validations", cid, value)]
