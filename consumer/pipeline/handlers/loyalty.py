"""Loyalty card points and gift card credits.

customer.voucher.loyalty_card.points_added / points_transferred -> LoyaltyLedgerEntry
(`loyalty`); customer.voucher.gift.balance_added -> GiftCreditEntry (`gift-credits`).
`balance.points` / `balance.amount` is what this operation changed, `balance.balance` the
card's balance after it; the transaction's own balance details stand in when the top-level
balance is missing.
"""

from __future__ import annotations

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import Data, customer_id, emit, first, long, obj, text


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


def _ledger(activity: Activity, operation: str) -> list[Result]:
    data = activity.data
    voucher = obj(data, "voucher")
    transaction = obj(data, "transaction")
    details = obj(transaction, "details")
    balance = _balance(data, transaction)
    value = {
        "operation": operation,
        **_card(data, voucher, transaction),
        "points": long(balance, "points"),
        "balance": long(balance, "balance"),
        "source_voucher_id": None,
        "destination_voucher_id": None,
        "transaction_id": text(transaction, "id"),
        "transaction_type": text(transaction, "type"),
    }
    if operation == "transferred":
        value["source_voucher_id"] = first(
            text(obj(data, "source_voucher"), "id"), text(obj(details, "source_voucher"), "id")
        )
        value["destination_voucher_id"] = first(
            text(obj(data, "destination_voucher"), "id"),
            text(obj(details, "destination_voucher"), "id"),
        )
    return [emit(activity, "loyalty", customer_id(data), value)]


def points_added(activity: Activity) -> list[Result]:
    return _ledger(activity, "added")


def points_transferred(activity: Activity) -> list[Result]:
    return _ledger(activity, "transferred")


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
