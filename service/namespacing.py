"""Ids as Genlook sees them. Every app of a gateway shares one Genlook account, so product ids
and end-user ids are prefixed with the app: one app can never reference, overwrite or erase
another app's products or users upstream."""

from __future__ import annotations


def upstream_product_id(app: str, external_id: str) -> str:
    return f"{app}:{external_id}"


def upstream_user_id(app: str, external_user_id: str | None) -> str | None:
    return None if external_user_id is None else f"{app}:{external_user_id}"
