"""Pure name building (service/namespacing.py): no two different sets of parts give one name."""

from __future__ import annotations

import itertools

import pytest
from service.keys import Keys
from service.namespacing import (
    InvalidAppId,
    check_app_id,
    end_user_idempotency_key,
    part,
    upstream_account,
    upstream_product_id,
    upstream_user_id,
)
from service.settings import GenlookSettings

# Ids an older gateway accepted, next to ids it generates, with every separator in play.
IDS = ["c", "c:z", "z:tee", "tee", "", "~", "~Yw", "a.b", "a-b_c", "user:3:bob", "bob:K", "K"]


@pytest.mark.parametrize(
    "app_id", ["c", "demo", "default", "app_0a1b2c3d4e5f", "Shop.eu-1", "a" * 64]
)
def test_app_ids_in_the_alphabet_are_kept(app_id: str) -> None:
    assert check_app_id(app_id) == app_id
    assert part(app_id) == app_id  # so upstream ids and Redis keys of valid apps never move


@pytest.mark.parametrize(
    "app_id", ["c:z", "", "_anon_x", "-x", "a b", "a/b", "é", "a\x00", "a" * 65, "~x"]
)
def test_app_ids_outside_the_alphabet_are_refused(app_id: str) -> None:
    with pytest.raises(InvalidAppId):
        check_app_id(app_id)


def test_encoded_parts_never_collide_nor_contain_the_separator() -> None:
    encoded = [part(v) for v in IDS]
    assert len(set(encoded)) == len(IDS)
    assert all(":" not in p and p for p in encoded)


def test_upstream_ids_and_keys_of_two_apps_never_meet() -> None:
    keys = Keys("t:")
    for (app1, x1), (app2, x2) in itertools.combinations(itertools.product(IDS, IDS), 2):
        assert upstream_product_id(app1, x1) != upstream_product_id(app2, x2)
        assert upstream_user_id(app1, x1) != upstream_user_id(app2, x2)
        assert keys.idempotency(app1, x1) != keys.idempotency(app2, x2)
        assert keys.customer_tryons(app1, x1) != keys.customer_tryons(app2, x2)


def test_end_users_idempotency_keys_never_meet() -> None:
    scoped = {end_user_idempotency_key(u, k): (u, k) for u, k in itertools.product(IDS, IDS)}
    assert len(scoped) == len(IDS) ** 2
    assert end_user_idempotency_key("team", "bob:K") != end_user_idempotency_key("team:bob", "K")


def test_the_upstream_account_names_base_url_and_key_without_the_key() -> None:
    key = "gk_live_0123456789abcdefghijklmnop"
    one = upstream_account(GenlookSettings(api_key=key, base_url="https://a.example/v1"))
    assert one == upstream_account(GenlookSettings(api_key=key, base_url="https://a.example/v1/"))
    assert one != upstream_account(
        GenlookSettings(api_key=key + "x", base_url="https://a.example/v1")
    )
    assert one != upstream_account(GenlookSettings(api_key=key, base_url="https://b.example/v1"))
    assert len(one) == 12
