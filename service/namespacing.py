"""How names are built from parts, so that no two different sets of parts make the same name.

Every app of a gateway shares one Genlook account, so product ids and end-user ids are prefixed
with the app: one app can never reference, overwrite or erase another app's products or users
upstream. The same joining names Redis keys (service/keys.py). A join is unambiguous only if no
part but the last can contain the separator, so:

- app ids are restricted at creation to `APP_ID_ALPHABET` (no `:`), and
- a part that may hold anything (an app id stored before that rule existed, an end user's
  Idempotency-Key) is encoded by `part` or length-prefixed before it is joined.

Cached upstream references (Genlook imageIds, product existence) are only true of the account
they came from: their keys carry `upstream_account`, a short digest of the base URL and API key
(never the key itself), so a new emulator address or a new key starts with an empty cache.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # keys.py imports this module; it must not pull the settings in at run time
    from service.settings import GenlookSettings

# Letters, digits, `.`, `_` and `-`; starting with a letter or digit (so never `_anon_`, the
# prefix Genlook reserves); at most 64 characters. Every id the gateway generates (`app_<hex>`)
# and the demo's `demo` and the default `default` fit it.
APP_ID_ALPHABET = "letters, digits, '.', '_' and '-', starting with a letter or digit, 1-64 long"
_APP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SAFE_PART = re.compile(r"[A-Za-z0-9._-]+")
# Never in a safe part: what marks an encoded one.
_ENCODED = "~"


# The implicit upstream account made of GENLOOK_API_KEY and GENLOOK_BASE_URL (docs/accounts.md):
# its Redis keys keep the names they had before accounts existed.
DEFAULT_ACCOUNT = "default"


class InvalidAppId(ValueError):
    def __init__(self, app_id: str) -> None:
        super().__init__(f"app id {app_id!r} is not allowed: use {APP_ID_ALPHABET}")


def check_app_id(app_id: str) -> str:
    """The app id, if it may name a new app; InvalidAppId otherwise."""
    if _APP_ID.fullmatch(app_id) is None:
        raise InvalidAppId(app_id)
    return app_id


def part(value: str) -> str:
    """`value` made safe to join with `:`: unchanged when it is made of safe characters (every
    valid app id), else `~` + its URL-safe base64. Safe values never start with `~`, so two
    different values never give the same part, and no part contains `:`."""
    if _SAFE_PART.fullmatch(value):
        return value
    return _ENCODED + base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def unpart(value: str) -> str:
    """The value `part` was given (for showing a stored name)."""
    if not value.startswith(_ENCODED):
        return value
    encoded = value[len(_ENCODED) :]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


def upstream_product_id(app: str, external_id: str) -> str:
    return f"{part(app)}:{external_id}"


def upstream_user_id(app: str, external_user_id: str | None) -> str | None:
    return None if external_user_id is None else f"{part(app)}:{external_user_id}"


def end_user_idempotency_key(external_user_id: str | None, key: str) -> str:
    """An end user's Idempotency-Key, in a space of its own: the user id is length-prefixed,
    so user `team` sending `bob:K` never meets user `team:bob` sending `K`."""
    user = external_user_id or ""
    return f"user:{len(user)}:{user}:{key}"


def upstream_account(genlook: GenlookSettings) -> str:
    """Which upstream account cached references belong to: a digest of where the gateway sends
    its calls and with which key. Twelve hex digits of SHA-256 tell accounts apart and give
    nothing back of the key."""
    material = f"{genlook.resolved_base_url}\n{genlook.resolved_api_key}".encode()
    return hashlib.sha256(material).hexdigest()[:12]
