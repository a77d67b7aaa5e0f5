"""customer.order.created / updated / paid / fulfilled / processing / canceled -> OrderEvent
(`orders`).

The status comes from the type (the order's own status is kept beside it): an `updated`
event may carry any order status. Amounts are minor units, as Voucherify sends them.
"""

from __future__ import annotations

from typing import Any

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import Data, emit, first, long, obj, safe_id, text


def _items(order: Data | None) -> tuple[int | None, int | None]:
    """(line count, sum of the quantities) of the order's items; None when it lists none."""
    items = order.get("items") if order is not None else None
    if type(items) is not list:
        return None, None
    quantity = 0
    for item in items:
        q = long(item, "quantity") if type(item) is dict else None
        quantity += q or 0
    return len(items), quantity


def _redeemables(order: Data | None) -> list[str]:
    """What the order's redemptions redeemed: each entry's object id, else its key."""
    redemptions = order.get("redemptions") if order is not None else None
    if type(redemptions) is not dict:
        return []
    out: list[str] = []
    for key, entry in redemptions.items():
        rid = first(text(entry, "related_object_id") if type(entry) is dict else None, key)
        if type(rid) is str and rid:
            out.append(rid)
    return out


def order_event(activity: Activity) -> list[Result]:
    data = activity.data
    order = obj(data, "order")
    lines, quantity = _items(order)
    value: dict[str, Any] = {
        "status": activity.canonical_type.rsplit(".", 1)[1],
        "order_id": text(order, "id"),
        "source_id": safe_id(text(order, "source_id")),
        "order_status": text(order, "status"),
        "amount": long(order, "amount"),
        "discount_amount": first(long(order, "total_discount_amount"), long(order, "discount_amount")),
        "total_amount": long(order, "total_amount"),
        "line_count": lines,
        "item_quantity": quantity,
        "redeemable_ids": _redeemables(order),
        "redemption_id": text(obj(data, "redemption"), "id"),
        "referrer_id": first(text(obj(data, "referrer"), "id"), text(order, "referrer_id")),
    }
    cid = first(text(obj(data, "customer"), "id"), text(order, "customer_id"))
    return [emit(activity, "orders", cid, value)]
