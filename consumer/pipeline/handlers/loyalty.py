"""Loyalty card points and gift card credits.

customer.voucher.loyalty_card.points_added / points_transferred / points_activated /
points_expired and pending_points.added / updated / activated / canceled -> LoyaltyLedgerEntry
(`loyalty`); customer.voucher.gift.balance_added -> GiftCreditEntry (`gift-credits`).
`balance.points` / `balance.amount` is what this operation changed, `balance.balance` the
card's balance after it; the transaction's own balance details stand in when the top-level
balance is missing.
"""

from __future__ import annotations

from typing import Any

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import Data, customer_id, emit, first, long, obj, text
from consumer.pipeline.handlers._json import member, plain


def _balance(data: Data, transaction: Data | None) -> Data | None:
    balance = obj(data, "balance")
    return balance if balance is not None else obj(obj(transaction, "details"), "balance")


def _card(data: Data, voucher: Data | None, transaction: Data | None) -> dict[str, str | None]:
    """The card (or gift voucher) a balance change is about, from the event or its transaction."""
    return {
        "campaign_id": first(
            text(obj(data, "campaign"), "id"),
            text(voucher, "campaign_id"),
            text(transaction, "campaign_id"),
        ),
        "voucher_id": first(text(voucher, "id"), text(transaction, "voucher_id")),
        "voucher_code": text(voucher, "code"),
    }


def _ledger(activity: Activity, operation: str, data: Data | None = None) -> list[Result]:
    data = activity.data if data is None else data
    voucher = obj(data, "voucher")
    transaction = obj(data, "transaction")
    details = obj(transaction, "details")
    balance = _balance(data, transaction)
    value: dict[str, Any] = {
        "operation": operation,
        **_card(data, voucher, transaction),
        "points": long(balance, "points"),
        "balance": long(balance, "balance"),
        "source_voucher_id": None,
        "destination_voucher_id": None,
        "transaction_id": text(transaction, "id"),
        "transaction_type": text(transaction, "type"),
        "pending_points_id": None,
        "pending_balance": None,
        "order_id": text(obj(data, "order"), "id"),
        "activates_at": None,
    }
    if operation == "expired":
        # `points` is what expired; the transaction's balance change is its negative
        expired = long(data, "points")
        value["points"] = expired if expired is not None else _magnitude(value["points"])
    if operation == "transferred":
        value["source_voucher_id"] = first(
            text(obj(data, "source_voucher"), "id"), text(obj(details, "source_voucher"), "id")
        )
        value["destination_voucher_id"] = first(
            text(obj(data, "destination_voucher"), "id"),
            text(obj(details, "destination_voucher"), "id"),
        )
    return [emit(activity, "loyalty", customer_id(data), value)]


def _magnitude(points: int | None) -> int | None:
    return abs(points) if points is not None else None


def points_added(activity: Activity) -> list[Result]:
    return _ledger(activity, "added")


def points_transferred(activity: Activity) -> list[Result]:
    return _ledger(activity, "transferred")


def points_activated(activity: Activity) -> list[Result]:
    # No data schema is published for this type: its data arrives as JSON text.
    return _ledger(activity, "activated", plain(activity.data))


def points_expired(activity: Activity) -> list[Result]:
    return _ledger(activity, "expired")


def _pending(activity: Activity, operation: str) -> list[Result]:
    data = activity.data
    voucher = obj(data, "voucher")
    pending = obj(data, "pending_points")
    transaction = obj(data, "transaction")
    # the pending balance: documented for added/updated/canceled, sent (into _extra) for activated too
    pending_balance = member(data, "voucher_pending_points_balance")
    card = _card(data, voucher, transaction)
    value: dict[str, Any] = {
        "operation": operation,
        "campaign_id": first(card["campaign_id"], text(pending, "campaign_id")),
        "voucher_id": first(card["voucher_id"], text(pending, "voucher_id")),
        "voucher_code": card["voucher_code"],
        "points": long(pending, "points"),
        "balance": first(long(obj(data, "balance"), "balance"), long(obj(voucher, "loyalty_card"), "balance")),
        "source_voucher_id": None,
        "destination_voucher_id": None,
        "transaction_id": text(transaction, "id"),
        "transaction_type": text(transaction, "type"),
        "pending_points_id": text(pending, "id"),
        "pending_balance": long(pending_balance, "total"),
        "order_id": first(text(pending, "order_id"), text(obj(data, "order"), "id")),
        "activates_at": text(pending, "activates_at"),
    }
    cid = first(customer_id(data), text(pending, "customer_id"))
    return [emit(activity, "loyalty", cid, value)]


def pending_points_added(activity: Activity) -> list[Result]:
    return _pending(activity, "pending_added")


def pending_points_updated(activity: Activity) -> list[Result]:
    return _pending(activity, "pending_updated")


def pending_points_activated(activity: Activity) -> list[Result]:
    return _pending(activity, "pending_activated")


def pending_points_canceled(activity: Activity) -> list[Result]:
    return _pending(activity, "pending_canceled")


def gift_balance_added(activity: Activity) -> list[Result]:
    data = activity.data
    voucher = obj(data, "voucher")
    transaction = obj(data, "transaction")
    balance = _balance(data, transaction)
    value = {
        **_card(data, voucher, transaction),
        "amount": long(balance, "amount"),
        "balance": long(balance, "balance"),
        "transaction_id": text(transaction, "id"),
        "transaction_type": text(transaction, "type"),
    }
    return [emit(activity, "gift-credits", customer_id(data), value)]
