"""Typed accessors for the app-scoped objects (in app.extensions) and the caller."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar, cast

from quart import current_app, g, request, session

from pixweb import validation
from pixweb.broker import Broker
from pixweb.config import Config
from pixweb.errors import AuthenticationError, ForbiddenError, InsufficientScopeError
from pixweb.metrics import Metrics
from pixweb.models import Merchant
from pixweb.services import api_keys, merchants
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
    """Return the merchant of the request's bearer token, or raise AuthenticationError.

    The token is a logged-in merchant's JWT (every scope) or an API key (`pxw_...`, its
    scopes: `require_scope` checks them)."""
    cached = g.get("merchant")
    if cached is not None:
        return cast(Merchant, cached)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("missing bearer token")
    merchant, g.scopes = await merchant_of_token(token.strip())
    g.merchant = merchant
    return merchant


async def merchant_of_token(token: str) -> tuple[Merchant, frozenset[str] | None]:
    """The merchant of a JWT or an API key, and the key's scopes (None: a JWT, all of them)."""
    if api_keys.is_api_key(token):
        caller = await api_keys.authenticate(token)  # the database: revocations hold at once
        return caller.merchant, caller.scopes
    tokens = cast(merchants.TokenCache, current_app.extensions[TOKENS_KEY])
    return await tokens.merchant(token), None


# `requires_scope(LOGIN_ONLY)`: a route for the logged-in merchant's own token, never a key
# (a key cannot make keys, nor replace the PSP's credentials).
LOGIN_ONLY = "login"
SCOPE_ATTRIBUTE = "_pixweb_scope"
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def require_scope(scope: str) -> None:
    """Refuse (403, naming `scope`) an API key without it; a JWT has every scope.

    Call after `current_merchant()` has authenticated the request."""
    scopes: frozenset[str] | None = g.get("scopes")
    if scopes is None:
        return
    if scope == LOGIN_ONLY:
        raise InsufficientScopeError("an API key cannot do this: use a logged-in merchant's token")
    if scope not in scopes:
        raise InsufficientScopeError(f"this API key lacks the scope {scope}")


def requires_scope(scope: str) -> Callable[[Handler], Handler]:
    """Declare the scope a route needs and enforce it: 401 without credentials, 403 when an
    API key lacks it, before the body is read. `@requires_scope("webhooks:manage")`."""
    assert scope == LOGIN_ONLY or scope in api_keys.SCOPES, scope

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            await current_merchant()
            require_scope(scope)
            return await handler(*args, **kwargs)

        setattr(wrapper, SCOPE_ATTRIBUTE, scope)
        return cast(Handler, wrapper)

    return decorate


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
