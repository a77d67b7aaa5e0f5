"""customer.consents.given / revoked -> ConsentChange (`consents`)."""

from __future__ import annotations

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import customer_id, emit


def _change(activity: Activity, change: str) -> list[Result]:
    data = activity.data
    consents = data.get("consents")
    ids: list[str] = []
    if type(consents) is list:
        for c in consents:
            if type(c) is dict:
                cid = c.get("id")
                if type(cid) is str and cid:
                    ids.append(cid)
    unsubscribed = data.get("unsubscribed")
    value = {
        "change": change,
        "consent_ids": ids,
        "unsubscribed": unsubscribed if type(unsubscribed) is bool else None,
    }
    return [emit(activity, "consents", customer_id(data), value)]


def consents_given(activity: Activity) -> list[Result]:
    return _change(activity, "given")


def consents_revoked(activity: Activity) -> list[Result]:
    return _change(activity, "revoked")
