"""A try-on as Genlook's generation: its statuses, fields and the gateway's result link.

The generation id is the gateway's try-on id, never the upstream one: it names the same try-on
on `/v1/try-ons/{id}`, and the upstream id belongs to the gateway's Genlook account.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from service.tryons.models import TryOnOut, TryOnStatus

GenlookStatus = Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED"]

# Queued and being sent are both "not started" to a Genlook client; a cancel (only ops can
# cancel here: Genlook has no cancel) ends the generation without a result, as FAILED does.
STATUS: dict[TryOnStatus, GenlookStatus] = {
    "queued": "PENDING",
    "submitting": "PENDING",
    "running": "PROCESSING",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "canceled": "FAILED",
}


class Accepted(msgspec.Struct, frozen=True, rename="camel"):
    """What `POST /try-on` answers."""

    generation_id: str
    status: GenlookStatus
    product_external_id: str


class Generation(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """`GET /generations/{id}`; with `productExternalId`, what `POST /try-on/sync` answers.
    Optional fields are left out, never null, as Genlook documents them."""

    generation_id: str
    status: GenlookStatus
    created_at: str
    updated_at: str
    result_image_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    product_external_id: str | None = None


def generation(view: TryOnOut, product_external_id: str | None = None) -> Generation:
    """`view`: the try-on as `ResultLinks.view` shows it (its result as the gateway's link)."""
    status = STATUS[view.status]
    error_code = error_message = None
    if status == "FAILED":
        error = view.error
        error_code = error.code if error else "CANCELED"
        error_message = error.message if error else "The try-on was canceled."
    return Generation(
        generation_id=view.id,
        status=status,
        created_at=view.created_at,
        updated_at=view.updated_at,
        result_image_url=view.result.image_url if view.result and status == "COMPLETED" else None,
        error_code=error_code,
        error_message=error_message,
        product_external_id=product_external_id,
    )
