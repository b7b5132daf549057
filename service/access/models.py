"""Apps, their keys and their policy, as stored in Redis (msgspec JSON)."""

from __future__ import annotations

import time
from typing import Annotated, Literal

import msgspec

KeyKind = Literal["secret", "publishable"]


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """What an app's browsers may spend. `None` means unlimited for that dimension."""

    # Origins (scheme://host[:port]) whose pages may call with the publishable key.
    allowed_origins: tuple[str, ...] = ()
    # Try-ons accepted per UTC day, all callers of the app together (secret keys included):
    # the app's credit ceiling, reserved atomically at accept time.
    daily_credit_cap: int | None = None
    # Requests per minute from browsers: per end user, per app, per client IP.
    user_rate_per_minute: int = 30
    app_rate_per_minute: int = 600
    ip_rate_per_minute: int = 60
    # Photo uploads per minute per end user.
    uploads_per_minute: int = 10
    # Browsers without a token (publishable key only), limited per IP by rate and a daily quota.
    anonymous: bool = False
    anonymous_tryons_per_ip_per_day: int = 3
    # Seconds a browser's try-on may wait to be sent upstream when its request names no
    # `deadlineSeconds`: a shopper who left spends no credit. None: only the worker's bound.
    browser_deadline_seconds: float | None = None
    # Identical try-ons complete from a stored result instead of spending a credit
    # (service/results/reuse.py); False: every try-on of the app is generated afresh.
    result_cache: bool = True
    # The app's share of the upstream budget within a lane, against the other apps' weights
    # (docs/lanes.md): weight 3 beside weight 1 gets three cells in four while both wait.
    lane_weight: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1


class App(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    policy: Policy = msgspec.field(default_factory=Policy)
    created_at: float = msgspec.field(default_factory=time.time)


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a key digest resolves to. The key itself is never stored."""

    key_id: str
    app: str
    kind: KeyKind
    # The first characters of the key, to recognise it in a listing (`sk_live_ab12…`).
    hint: str
    created_at: float = msgspec.field(default_factory=time.time)
    # Set when rotated: the old key keeps working until then.
    expires_at: float | None = None


class SigningKey(msgspec.Struct, frozen=True, kw_only=True):
    """A public key that verifies offline end-user tokens (ES256); the gateway never holds
    the private half, so nothing stored here can mint a token."""

    kid: str
    public_pem: str
    created_at: float = msgspec.field(default_factory=time.time)
