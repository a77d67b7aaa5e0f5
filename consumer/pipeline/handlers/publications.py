"""customer.publication.succeeded / failed -> PublicationOutcome (`publications`).

The contract's publication record (Voucherify's ListPublicationsItemValidSingleVoucher) has
no failure_code, so `failure_code` stays null until the contract carries one.
"""

from __future__ import annotations

from consumer.model import Activity, Result
from consumer.pipeline.handlers._common import emit, first, obj, text


def _outcome(activity: Activity, result: str) -> list[Result]:
    data = activity.data
    publication = obj(data, "publication")
    voucher = first(obj(publication, "voucher"), obj(data, "voucher"))
    cid = first(text(obj(data, "customer"), "id"), text(publication, "customer_id"))
    value = {
        "result": result,
        "publication_id": text(publication, "id"),
        "voucher_code": text(voucher, "code"),
        "campaign_id": first(text(obj(data, "campaign"), "id"), text(voucher, "campaign_id")),
        "channel": text(publication, "channel"),
        "failure_code": text(publication, "failure_code"),
    }
    return [emit(activity, "publications", cid, value)]


def publication_succeeded(activity: Activity) -> list[Result]:
    return _outcome(activity, "succeeded")


def publication_failed(activity: Activity) -> list[Result]:
    return _outcome(activity, "failed")
