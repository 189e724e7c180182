"""Typed accessors for the app-scoped objects (in app.extensions) and the caller."""

from __future__ import annotations

from typing import cast

from quart import current_app, g, request

from pixweb.broker import Broker
from pixweb.config import Config
from pixweb.errors import AuthenticationError
from pixweb.models import Merchant
from pixweb.services import merchants

CONFIG_KEY = "pixweb.config"
BROKER_KEY = "pixweb.broker"


def get_config() -> Config:
    """Return this app's Config."""
    return cast(Config, current_app.extensions[CONFIG_KEY])


def get_broker() -> Broker:
    """Return this app's broker."""
    return cast(Broker, current_app.extensions[BROKER_KEY])


async def current_merchant() -> Merchant:
    """Return the merchant of the request's bearer token, or raise AuthenticationError."""
    cached = g.get("merchant")
    if cached is not None:
        return cast(Merchant, cached)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("missing bearer token")
    merchant = await merchants.merchant_from_token(token.strip(), secret=get_config().secret_key)
    g.merchant = merchant
    return merchant
