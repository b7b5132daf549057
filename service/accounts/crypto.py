"""Genlook keys encrypted at rest with the master key from the environment (GATEWAY_MASTER_KEY).

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) authenticates what it decrypts, so a
ciphertext altered in Redis is refused, not turned into a wrong key. The setting holds one or
more Fernet keys, comma separated: the first encrypts, every one decrypts (MultiFernet), which
is how the master key is rotated (docs/accounts.md): put a new key first, run
`tryon-gateway accounts rotate-master-key`, then drop the old one.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from service.domain_errors import Conflict, Unavailable


class MasterKeyMissing(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "MASTER_KEY_MISSING",
            "GATEWAY_MASTER_KEY is not set: stored accounts need it to encrypt their keys.",
        )


class KeyUnreadable(Unavailable):
    """A stored key does not decrypt with any master key (a wrong or dropped master key)."""

    def __init__(self) -> None:
        super().__init__(
            "MASTER_KEY_WRONG",
            "A stored account key does not decrypt with GATEWAY_MASTER_KEY.",
        )


def parse_master_keys(spec: str) -> list[Fernet]:
    """The Fernet keys of GATEWAY_MASTER_KEY; ValueError naming the setting if one is malformed
    (never echoing it)."""
    keys = []
    for position, raw in enumerate(p.strip() for p in spec.split(",")):
        if not raw:
            continue
        try:
            keys.append(Fernet(raw.encode()))
        except (ValueError, TypeError):
            raise ValueError(
                f"invalid GATEWAY_MASTER_KEY: key {position + 1} is not a Fernet key "
                "(32 url-safe base64-encoded bytes; make one with "
                "`tryon-gateway accounts master-key`)"
            ) from None
    return keys


def new_master_key() -> str:
    return Fernet.generate_key().decode()


class KeyBox:
    def __init__(self, spec: str) -> None:
        keys = parse_master_keys(spec)
        self._box = MultiFernet(keys) if keys else None

    def _need(self) -> MultiFernet:
        if self._box is None:
            raise MasterKeyMissing()
        return self._box

    def seal(self, api_key: str) -> str:
        return self._need().encrypt(api_key.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._need().decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise KeyUnreadable() from None

    def reseal(self, sealed: str) -> str:
        """The same key, encrypted with the first master key (rotation)."""
        try:
            return self._need().rotate(sealed.encode()).decode()
        except InvalidToken:
            raise KeyUnreadable() from None
