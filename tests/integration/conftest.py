"""The gateway app in process (Litestar's test client) on the test Redis database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from service.app import create_app
from service.settings import Settings

from tests.conftest import TEST_REDIS_URL

SECRET_KEY = "sk_test_integration_key_0123456789"


@pytest.fixture
async def client(redis: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    """A secret-key client of app `shop`, on a flushed database."""
    settings = Settings.from_env(
        {"REDIS_URL": TEST_REDIS_URL, "GATEWAY_SECRET_KEYS": f"{SECRET_KEY}=shop"}
    )
    async with AsyncTestClient(app=create_app(settings)) as c:
        c.headers["Authorization"] = f"Bearer {SECRET_KEY}"
        yield c
