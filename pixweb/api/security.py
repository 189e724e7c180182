"""Route guards: bearer tokens for merchants, HMAC signatures for the bank."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar, cast

from quart import request
from quart_schema import security_scheme

from pixweb.deps import current_merchant, get_config
from pixweb.services import webhooks

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def bearer_required(handler: Handler) -> Handler:
    """Authenticate the merchant (401) before the body is even read; document it."""

    @wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        await current_merchant()
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
