"""Route guards: bearer tokens for merchants, HMAC signatures for the bank."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar, cast

from quart import request
from quart_schema import security_scheme

from pixweb.deps import LOGIN_ONLY, SCOPE_ATTRIBUTE, current_merchant, get_config, require_scope
from pixweb.services import webhooks

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def bearer_required(handler: Handler) -> Handler:
    """Authenticate the merchant (401) before the body is even read; document it.

    Stack `deps.requires_scope(...)` below it: a route that declares no scope refuses API
    keys (403), so a forgotten declaration fails closed."""
    declared = getattr(handler, SCOPE_ATTRIBUTE, None) is not None

    @wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        await current_merchant()
        if not declared:
            require_scope(LOGIN_ONLY)
        return await handler(*args, **kwargs)

    return cast(Handler, security_scheme([{"bearer": []}])(wrapper))


def signed_by_bank(handler: Handler) -> Handler:
    """Refuse the call (401) unless its raw body carries the bank's HMAC signature."""

    @wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        body = cast(bytes, await request.get_data(as_text=False))
        signature = request.headers.get(webhooks.SIGNATURE_HEADER)
        webhooks.verify_signature(body, signature, get_config().webhook_secret)
        return await handler(*args, **kwargs)

    return cast(Handler, wrapper)
