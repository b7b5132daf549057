"""Admin tokens for the ops API and dashboard (`OPS_ADMIN_TOKENS`): parsed into digests.

A leaf module: settings validate the tokens at start-up and the ops API looks callers up with
the same digest, and neither should load anything else to do so.
"""

from __future__ import annotations

import hashlib

# App keys have these prefixes; an admin token must never be mistaken for one (or be one).
APP_KEY_PREFIXES = ("sk_", "pk_")
MIN_TOKEN_LENGTH = 24


def token_digest(token: str) -> str:
    """SHA-256 hex, as service.auth keeps app keys: no usable token stays in memory."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_admin_tokens(spec: str) -> dict[str, str]:
    """`tok1=alice,tok2` -> {sha256(token): name}. A token without a name is called
    `admin-<first 8 hex of its digest>` (who paused what is recorded by that name).

    Raises ValueError for a token that looks like an app key or is too short to be a secret."""
    tokens: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        token, _, name = item.partition("=")
        token = token.strip()
        if token.startswith(APP_KEY_PREFIXES):
            raise ValueError("an admin token must not look like an app key (sk_/pk_)")
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"admin tokens must be at least {MIN_TOKEN_LENGTH} characters")
        key = token_digest(token)
        tokens[key] = name.strip() or f"admin-{key[:8]}"
    return tokens
