"""Who is calling: every request is authenticated into a `Principal` (an app and a key kind).

Secret keys (`Authorization: Bearer sk_...`) are for servers and may do everything in their
app. Keys are kept only as SHA-256 digests, so a memory dump or a log never holds a usable key;
lookup by digest also makes comparison time independent of how much of a guess is right.
The browser access model (publishable keys, end-user tokens) plugs in as another key kind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from litestar import Request

from service.errors import ApiError

KeyKind = Literal["secret", "publishable"]


@dataclass(frozen=True, slots=True)
class Principal:
    app: str
    kind: KeyKind
    # Set when an end-user token scopes the caller to one user's try-ons.
    external_user_id: str | None = None


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_secret_keys(spec: str) -> dict[str, str]:
    """`sk_a=app1,sk_b=app2` -> {sha256(key): app}. A key without `=app` belongs to `default`."""
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, _, app = item.partition("=")
        if not key.startswith("sk_"):
            raise ValueError("secret keys must start with sk_")
        keys[digest(key)] = app or "default"
    return keys


class KeyRing:
    def __init__(self, secret_keys: Mapping[str, str]) -> None:
        self._secret = dict(secret_keys)

    @classmethod
    def from_keys(cls, pairs: Iterable[tuple[str, str]]) -> KeyRing:
        return cls({digest(key): app for key, app in pairs})

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise ApiError(401, "MISSING_API_KEY", "Send `Authorization: Bearer <key>`.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "INVALID_API_KEY", "Send `Authorization: Bearer <key>`.")
        app = self._secret.get(digest(token.strip()))
        if app is None:
            raise ApiError(401, "INVALID_API_KEY", "The key is not valid.")
        return Principal(app=app, kind="secret")


def require_secret(request: Request[Any, Any, Any]) -> Principal:
    """Dependency: the caller must hold a secret key."""
    ring: KeyRing = request.app.state.keyring
    principal = ring.authenticate(request.headers.get("authorization"))
    if principal.kind != "secret":
        raise ApiError(403, "SECRET_KEY_REQUIRED", "This route needs a secret key.")
    return principal
