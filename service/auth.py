"""Who is calling: every request is authenticated into a `Principal` (an app and a key kind).

Secret keys (`Authorization: Bearer sk_...`) are for servers and may do everything in their
app. A publishable key (`pk_...`) only identifies an app: a browser holding one may call the
few routes marked browser-safe, from the app's allowed origins, as the end user named by its
token (`X-Tryon-Token`), or anonymously if the app opted in, and within the app's rate limits.
Keys are kept only as SHA-256 digests (service/access/registry.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from litestar import Request

from service.access.keyring import KeyRing
from service.access.models import KeyKind, Policy
from service.access.quotas import Limit, Payer, Quotas
from service.access.registry import digest
from service.access.tokens import TokenGrant, TokenVerifier
from service.domain_errors import Forbidden, Unauthenticated
from service.namespacing import check_app_id


def _auth_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None, str | None]:
    """Authorization, Origin and X-Tryon-Token in one pass over the raw ASGI headers (names
    arrive lower-cased): every request authenticates, and building Litestar's Headers object
    for three lookups cost more than the lookups."""
    authorization = origin = token = None
    for name, value in raw:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"x-tryon-token":
            token = value.decode("latin-1")
    return authorization, origin, token


@dataclass(frozen=True, slots=True)
class Principal:
    app: str
    kind: KeyKind
    # Set for browsers: the end user their token (or, anonymous, their IP) stands for; every
    # try-on they read must be theirs.
    external_user_id: str | None = None
    # The app's stored policy; None for apps configured only in the environment (no limits).
    policy: Policy | None = None
    grant: TokenGrant | None = None
    client_ip: str = ""

    @property
    def is_browser(self) -> bool:
        return self.kind == "publishable"

    @property
    def is_anonymous(self) -> bool:
        return self.is_browser and self.grant is None

    @property
    def payer(self) -> Payer | None:
        """Whose limits this caller's try-ons count against, besides the app's."""
        if self.grant is not None:
            g = self.grant
            return Payer(
                token_id=g.token_id, max_tryons=g.max_tryons, token_expires_at=g.expires_at
            )
        return Payer(anonymous_ip=self.client_ip) if self.is_anonymous else None


def parse_secret_keys(spec: str) -> dict[str, str]:
    """`sk_a=app1,sk_b=app2` -> {sha256(key): app}. A key without `=app` belongs to `default`.
    An app id outside the app id alphabet (service/namespacing.py) is refused: InvalidAppId."""
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, _, app = item.partition("=")
        if not key.startswith("sk_"):
            raise ValueError("secret keys must start with sk_")
        keys[digest(key)] = check_app_id(app or "default")
    return keys


def client_ip(request: Request[Any, Any, Any], trusted_proxies: int) -> str:
    """The caller's address: the socket peer, or with `trusted_proxies` load balancers in
    front, the address the outermost trusted one saw (X-Forwarded-For read from the right, so
    a client cannot forge it by sending its own header)."""
    peer = request.client.host if request.client else ""
    if trusted_proxies <= 0:
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    if len(hops) < trusted_proxies:
        return hops[0] if hops else peer
    candidate = hops[-trusted_proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer


def anonymous_user(app: str, ip: str) -> str:
    return "anon_" + hashlib.sha256(f"{app}\0{ip}".encode()).hexdigest()[:20]


class Authenticator:
    def __init__(
        self, ring: KeyRing, tokens: TokenVerifier, quotas: Quotas, *, trusted_proxies: int = 0
    ) -> None:
        self.ring = ring
        self._tokens = tokens
        self._quotas = quotas
        self._trusted_proxies = trusted_proxies

    async def authenticate(
        self, request: Request[Any, Any, Any], *, browser_safe: bool
    ) -> Principal:
        authorization, origin, token = _auth_headers(request.scope["headers"])
        key = bearer(authorization)
        found = await self.ring.lookup(key)
        if found is None:
            raise Unauthenticated("INVALID_API_KEY", "The key is not valid.")
        info, app = found
        policy = app.policy if app is not None else None
        if info.kind == "secret":
            return Principal(app=info.app, kind="secret", policy=policy)
        if not browser_safe:
            raise Forbidden("SECRET_KEY_REQUIRED", "This route needs a secret key.")
        policy = policy or Policy()
        # Not the protection (any script can forge an Origin) but it keeps another site's
        # pages from using this app's key through a browser, where CORS applies anyway.
        if origin is not None and origin not in policy.allowed_origins:
            raise Forbidden("ORIGIN_NOT_ALLOWED", "This origin may not use this key.")
        ip = client_ip(request, self._trusted_proxies)
        if token:
            grant = await self._tokens.verify(token, info.app)
            user = grant.external_user_id
        elif policy.anonymous:
            grant, user = None, anonymous_user(info.app, ip)
        else:
            raise Unauthenticated(
                "TOKEN_REQUIRED", "Browsers send an end-user token in `X-Tryon-Token`."
            )
        principal = Principal(
            app=info.app,
            kind="publishable",
            external_user_id=user,
            policy=policy,
            grant=grant,
            client_ip=ip,
        )
        await self._quotas.take(browser_rates(self._quotas, principal, time.time()))
        return principal

    async def count_upload(self, principal: Principal) -> None:
        """Count a photo upload against the browser's upload rate (RateLimited when full)."""
        await self._quotas.take(upload_limits(self._quotas, principal, time.time()))


def bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("MISSING_API_KEY", "Send `Authorization: Bearer <key>`.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("INVALID_API_KEY", "Send `Authorization: Bearer <key>`.")
    return token


def browser_rates(quotas: Quotas, p: Principal, now: float) -> list[Limit]:
    policy = p.policy or Policy()
    return [
        quotas.rate(f"user:{p.app}", p.external_user_id or "", policy.user_rate_per_minute, now),
        quotas.rate("app", p.app, policy.app_rate_per_minute, now),
        quotas.rate(f"ip:{p.app}", p.client_ip, policy.ip_rate_per_minute, now),
    ]


def upload_limits(quotas: Quotas, p: Principal, now: float) -> list[Limit]:
    if not p.is_browser or p.policy is None:
        return []
    user = p.external_user_id or p.client_ip
    return [quotas.rate(f"upload:{p.app}", user, p.policy.uploads_per_minute, now)]
