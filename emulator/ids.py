"""Opaque id formats shaped like the real ones, so clients cannot rely on any simpler shape."""

from __future__ import annotations

import secrets
import string
from datetime import datetime

from genlook_wire.ids import ANON_PREFIX

_ALNUM = string.ascii_lowercase + string.digits


def generation_id() -> str:
    return "cm" + "".join(secrets.choice(_ALNUM) for _ in range(23))


def anon_product_id() -> str:
    return ANON_PREFIX + secrets.token_hex(16)


def image_id(keep_for_days: int, today: datetime, ext: str) -> str:
    # Real ids are storage paths containing '/', the TTL and a date: clients must encode them.
    stamp = today.strftime("%Y%m%d")
    return (
        f"ephemeral/customer/ttl-{keep_for_days}d/{secrets.token_hex(8)}/"
        f"{stamp}-{secrets.token_hex(6)}.{ext}"
    )


def upload_ref() -> str:
    return f"upload://{secrets.token_hex(12)}"
