"""Fixtures: an app on a fresh in-memory database, its client, merchants and tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol

from pixweb.app import create_app
from pixweb.config import Config
from pixweb.deps import BROKER_KEY, CONFIG_KEY
from pixweb.models import Merchant
from pixweb.services import merchants
from tests.support import signed

PASSWORD = "correct horse battery"


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    """Settings of the app under test; a test module may override this fixture."""
    return {}


@pytest.fixture
async def app(app_overrides: dict[str, Any]) -> AsyncIterator[Quart]:
    settings = {
        "testing": True,
        "database_url": "sqlite://:memory:",
        "auto_migrate": True,
        **app_overrides,
    }
    application = create_app(settings)
    async with application.test_app():
        yield application


@pytest.fixture
def client(app: Quart) -> TestClientProtocol:
    return app.test_client()


@pytest.fixture
def config(app: Quart) -> Config:
    config: Config = app.extensions[CONFIG_KEY]
    return config


@pytest.fixture
def broker(app: Quart) -> Any:
    return app.extensions[BROKER_KEY]


async def make_merchant(email: str = "loja@example.com", **fields: Any) -> Merchant:
    """Create a merchant through the service, with test defaults."""
    values = {
        "name": "Padaria São João",
        "email": email,
        "password": PASSWORD,
        "city": "São Paulo",
        "pix_key": "loja@example.com",
        **fields,
    }
    return await merchants.register_merchant(**values)


@pytest.fixture
async def merchant(app: Quart) -> Merchant:
    return await make_merchant()


def bearer(merchant: Merchant, config: Config) -> dict[str, str]:
    token = merchants.issue_token(merchant, secret=config.secret_key, ttl_seconds=300)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth(merchant: Merchant, config: Config) -> dict[str, str]:
    return bearer(merchant, config)


@pytest.fixture
def sign(config: Config) -> Any:
    """Sign a confirmation payload with the app's webhook secret: (body, headers)."""
    return lambda payload: signed(payload, config.webhook_secret)
