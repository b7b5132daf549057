"""Stored accounts' Genlook keys: encrypted with the master key, rotated, and a malformed master
key refused at start-up without echoing it (service/accounts/crypto.py)."""

from __future__ import annotations

import pytest
from service.accounts.crypto import KeyBox, KeyUnreadable, MasterKeyMissing, new_master_key
from service.settings import Settings

SECRET = "gk_live_unit_test_key_0123456789"


def test_a_sealed_key_is_ciphertext_that_only_the_master_key_opens() -> None:
    master = new_master_key()
    sealed = KeyBox(master).seal(SECRET)
    assert SECRET not in sealed
    assert KeyBox(master).open(sealed) == SECRET
    with pytest.raises(KeyUnreadable):
        KeyBox(new_master_key()).open(sealed)
    with pytest.raises(KeyUnreadable):
        KeyBox(master).open(sealed[:-4] + "AAAA")  # altered in Redis: refused, not misread


def test_rotation_reseals_with_the_first_key_and_the_old_one_may_then_go() -> None:
    old, new = new_master_key(), new_master_key()
    sealed = KeyBox(old).seal(SECRET)
    resealed = KeyBox(f"{new},{old}").reseal(sealed)
    assert KeyBox(new).open(resealed) == SECRET


def test_no_master_key_refuses_to_seal() -> None:
    with pytest.raises(MasterKeyMissing):
        KeyBox("").seal(SECRET)


def test_a_malformed_master_key_fails_at_start_up_named_and_not_echoed() -> None:
    bad = "not-a-fernet-key-but-a-secret"
    with pytest.raises(ValueError, match="GATEWAY_MASTER_KEY: key 2") as exc:
        Settings.from_env({"GATEWAY_MASTER_KEY": f"{new_master_key()},{bad}"})
    assert bad not in str(exc.value)
    Settings.from_env({"GATEWAY_MASTER_KEY": f"{new_master_key()}, {new_master_key()}"})
