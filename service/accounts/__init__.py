"""Upstream accounts: several Genlook accounts behind one gateway (docs/accounts.md).

An account is a Genlook key (encrypted at rest, `crypto.py`), a base URL and a rate limit, with
a status the fleet shares (available or out of the pool with a reason, last balance read). An
app sends its try-ons through one account or an ordered pool of them (`registry.py`); the
directory (`directory.py`) hands out one client and one rate budget per account and takes an
account out of its pools when it answers 402 or 401.
"""
