"""Webhook endpoints: the stored record, its public views and the request bodies that change it.

The record is a msgspec Struct stored as JSON. It holds the signing secrets in clear because
HMAC signing needs them; the public views never show them, except the one answer that creates
an endpoint or rotates its secret, which is the app's only chance to copy the new secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, get_args

import msgspec

from service.tryons.models import iso

EventType = Literal[
    "tryon.completed",
    "tryon.failed",
    "tryon.canceled",
    "tryon.processing",
    "batch.completed",
    "account.balance_low",
    "app.daily_cap_near",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
# What an endpoint with no filter receives. `tryon.processing` doubles the deliveries of every
# try-on for a state few backends act on, so an endpoint gets it only by listing it. Budget
# alerts carry no try-on (their `data` is their own): a receiver written for try-on events
# would not expect them, so they too are sent only to endpoints that list them.
DEFAULT_EVENT_TYPES: frozenset[str] = frozenset(
    {"tryon.completed", "tryon.failed", "tryon.canceled", "batch.completed"}
)

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 500
MAX_HEADERS = 20
MAX_HEADER_NAME_LENGTH = 64
MAX_HEADER_VALUE_LENGTH = 1024
MAX_HEADERS_BYTES = 4096

# RFC 9110 field-name token characters.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Visible ASCII, space and tab: no CR/LF (header injection), no NUL, no other controls.
_FIELD_VALUE = re.compile(r"^[\t\x20-\x7e]*$")
# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection, and the rest describe the body
# or the signature, which the delivery engine sets: a custom value would break delivery or
# let an app forge what the receiver checks.
_RESERVED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "expect",
    }
)
_RESERVED_PREFIXES = ("webhook-", "svix-", "proxy-")


def header_problem(headers: Mapping[str, str]) -> str | None:
    """Why these custom headers cannot be sent, or None when they can."""
    if len(headers) > MAX_HEADERS:
        return f"at most {MAX_HEADERS} headers"
    seen: set[str] = set()
    size = 0
    for name, value in headers.items():
        lower = name.lower()
        if not _TOKEN.match(name) or len(name) > MAX_HEADER_NAME_LENGTH:
            return f"{name!r} is not a valid header name"
        if lower in _RESERVED_HEADERS or lower.startswith(_RESERVED_PREFIXES):
            return f"{name!r} is set by the gateway and cannot be overridden"
        if lower in seen:
            return f"{name!r} is given twice"
        seen.add(lower)
        if not _FIELD_VALUE.match(value) or len(value) > MAX_HEADER_VALUE_LENGTH:
            return f"the value of {name!r} is not a valid header value"
        size += len(name) + len(value) + 4  # ": " and CRLF, as on the wire
    if size > MAX_HEADERS_BYTES:
        return f"headers total at most {MAX_HEADERS_BYTES} bytes"
    return None


# --- the stored record -------------------------------------------------------------------------


class SecretVersion(msgspec.Struct, frozen=True, kw_only=True):
    secret: str
    created_at: float
    # None while current; set by a rotation to the end of its overlap.
    expires_at: float | None = None

    def active(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


class WebhookEndpoint(msgspec.Struct, kw_only=True):
    id: str
    app: str
    url: str
    description: str | None = None
    # Empty: every default event. Stored as plain strings so a record written before an event
    # type is retired still loads.
    event_types: list[str] = msgspec.field(default_factory=list)
    enabled: bool = True
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    created_at: float
    updated_at: float
    disabled_reason: str | None = None
    # Newest first: the first one is the current secret.
    secrets: list[SecretVersion] = msgspec.field(default_factory=list)

    def subscribes(self, event_type: str) -> bool:
        if self.event_types:
            return event_type in self.event_types
        return event_type in DEFAULT_EVENT_TYPES


# --- request bodies ----------------------------------------------------------------------------


class _Wire(
    msgspec.Struct, frozen=True, rename="camel", omit_defaults=True, forbid_unknown_fields=True
):
    """Public request models: unknown fields are a client bug and are refused."""


def _check(
    description: str | msgspec.UnsetType | None,
    event_types: list[EventType] | msgspec.UnsetType,
    headers: dict[str, str] | msgspec.UnsetType,
) -> None:
    # Raised from __post_init__, msgspec reports these as a ValidationError like any other,
    # so the API's decoder turns them into VALIDATION_FAILED.
    if isinstance(description, str) and len(description) > MAX_DESCRIPTION_LENGTH:
        raise ValueError(f"description: at most {MAX_DESCRIPTION_LENGTH} characters")
    if isinstance(event_types, list) and len(set(event_types)) != len(event_types):
        raise ValueError("eventTypes: an event type is listed twice")
    if isinstance(headers, dict) and (problem := header_problem(headers)):
        raise ValueError(f"headers: {problem}")


class EndpointCreate(_Wire, frozen=True):
    """Body of `POST /v1/webhook-endpoints`. The URL is checked by the SSRF guard, not here."""

    url: str
    description: str | None = None
    event_types: list[EventType] = msgspec.field(default_factory=list)
    enabled: bool = True
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < len(self.url) <= MAX_URL_LENGTH:
            raise ValueError(f"url: 1 to {MAX_URL_LENGTH} characters")
        _check(self.description, self.event_types, self.headers)


class EndpointUpdate(_Wire, frozen=True):
    """Body of `PATCH /v1/webhook-endpoints/{id}`: absent fields stay as they are; a null
    `description` clears it; `headers` and `eventTypes` replace the whole value."""

    url: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType | None = msgspec.UNSET
    event_types: list[EventType] | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    headers: dict[str, str] | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.url, str) and not 0 < len(self.url) <= MAX_URL_LENGTH:
            raise ValueError(f"url: 1 to {MAX_URL_LENGTH} characters")
        _check(self.description, self.event_types, self.headers)


MAX_OVERLAP_SECONDS = 7 * 86_400


class SecretRotate(_Wire, frozen=True):
    """Body of `POST /v1/webhook-endpoints/{id}/rotate-secret`: how long the old secret keeps
    signing, so receivers can deploy the new one without dropping a delivery."""

    overlap_seconds: int = 86_400

    def __post_init__(self) -> None:
        if not 0 <= self.overlap_seconds <= MAX_OVERLAP_SECONDS:
            raise ValueError(f"overlapSeconds: 0 to {MAX_OVERLAP_SECONDS}")


# --- public views ------------------------------------------------------------------------------


class EndpointOut(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An endpoint as the API shows it after creation: never a secret."""

    id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    headers: dict[str, str]
    disabled_reason: str | None
    created_at: str
    updated_at: str


class EndpointCreatedOut(EndpointOut, frozen=True, kw_only=True):
    """The answer to a creation: the only time the first secret is shown."""

    secret: str


class SecretRotatedOut(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The answer to a rotation: the new secret, shown once, and until when the previous one
    still signs deliveries."""

    id: str
    secret: str
    previous_secret_expires_at: str | None


def public_view(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        description=endpoint.description,
        event_types=list(endpoint.event_types),
        enabled=endpoint.enabled,
        headers=dict(endpoint.headers),
        disabled_reason=endpoint.disabled_reason,
        created_at=iso(endpoint.created_at),
        updated_at=iso(endpoint.updated_at),
    )


def created_view(endpoint: WebhookEndpoint) -> EndpointCreatedOut:
    fields = msgspec.structs.asdict(public_view(endpoint))
    return EndpointCreatedOut(**fields, secret=endpoint.secrets[0].secret)


def rotated_view(endpoint: WebhookEndpoint) -> SecretRotatedOut:
    previous = endpoint.secrets[1] if len(endpoint.secrets) > 1 else None
    return SecretRotatedOut(
        id=endpoint.id,
        secret=endpoint.secrets[0].secret,
        previous_secret_expires_at=(
            iso(previous.expires_at) if previous and previous.expires_at is not None else None
        ),
    )
