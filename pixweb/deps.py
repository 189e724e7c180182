"""Typed accessors for the app-scoped objects (in app.extensions) and the caller."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from typing import cast

from quart import current_app, g, request, session

from pixweb import validation
from pixweb.broker import Broker
from pixweb.config import Config
from pixweb.errors import AuthenticationError, ForbiddenError
from pixweb.metrics import Metrics
from pixweb.models import Merchant
from pixweb.services import merchants
from pixweb.services.merchants import MERCHANT_ID_MAX
from pixweb.services.psp_clients import PspClients

CONFIG_KEY = "pixweb.config"
BROKER_KEY = "pixweb.broker"
METRICS_KEY = "pixweb.metrics"
SHUTDOWN_KEY = "pixweb.shutdown"
TOKENS_KEY = "pixweb.tokens"
PSP_CLIENTS_KEY = "pixweb.psp_clients"


def get_config() -> Config:
    """Return this app's Config."""
    return cast(Config, current_app.extensions[CONFIG_KEY])


def get_broker() -> Broker:
    """Return this app's broker."""
    return cast(Broker, current_app.extensions[BROKER_KEY])


def get_metrics() -> Metrics:
    """Return this app's metrics."""
    return cast(Metrics, current_app.extensions[METRICS_KEY])


def get_psp_clients() -> PspClients:
    """Return this process's cache of the merchants' PSP clients."""
    return cast(PspClients, current_app.extensions[PSP_CLIENTS_KEY])


def get_shutdown() -> asyncio.Event:
    """Set when the server begins a graceful shutdown: sockets close so clients move on."""
    return cast(asyncio.Event, current_app.extensions[SHUTDOWN_KEY])


async def current_merchant() -> Merchant:
    """Return the merchant of the request's bearer token, or raise AuthenticationError."""
    cached = g.get("merchant")
    if cached is not None:
        return cast(Merchant, cached)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("missing bearer token")
    tokens = cast(merchants.TokenCache, current_app.extensions[TOKENS_KEY])
    merchant = await tokens.merchant(token.strip())
    g.merchant = merchant
    return merchant


SESSION_MERCHANT = "merchant_id"
SESSION_VERSION = "version"
SESSION_CSRF = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


async def session_merchant() -> Merchant | None:
    """Return the merchant logged in through the session cookie, if any."""
    # Only the app signs the cookie, but an id the database cannot hold (or True, an int
    # to Python) must not reach a query.
    merchant_id = validation.checked_id(session.get(SESSION_MERCHANT), MERCHANT_ID_MAX)
    if merchant_id is None:
        return None
    merchant = await Merchant.get_or_none(id=merchant_id)
    if merchant is None or session.get(SESSION_VERSION) != merchant.session_version:
        return None  # logged out since this cookie was issued
    return merchant


def csrf_token() -> str:
    """The session's CSRF token, made on first use; forms and HTMX headers carry it."""
    token = session.get(SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[SESSION_CSRF] = token
    return token


async def check_csrf() -> None:
    """Refuse (403) a state-changing request whose CSRF token is not the session's."""
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        return
    sent = request.headers.get(CSRF_HEADER) or (await request.form).get(CSRF_FIELD, "")
    expected = session.get(SESSION_CSRF)
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ForbiddenError("invalid or missing CSRF token; reload the page")
