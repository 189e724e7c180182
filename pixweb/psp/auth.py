"""The OAuth2 client-credentials token of one PSP connection: fetched over the same mTLS
pool, cached until shortly before it expires, renewed once per refusal."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import httpx
from pydantic import ValidationError

from pixweb.errors import PspAuthError, PspError, PspTlsError, PspUnavailableError
from pixweb.psp.schemas import TokenResponse
from pixweb.psp.transport import certificate_refused_by_proxy, describe, problem_of, retryable

log = logging.getLogger(__name__)

DEFAULT_LIFETIME = 300  # seconds, when the PSP does not say (`expires_in` is optional)


class TokenCache:
    """The current token; one fetch at a time, whatever the number of concurrent calls."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        token_url: str,
        credentials: tuple[str, str],
        scope: str | None,
        transport_error: Callable[[httpx.TransportError, str], Awaitable[PspError]],
    ) -> None:
        self._http, self._url, self._credentials = http, token_url, credentials
        self._scope = scope
        self._transport_error = transport_error
        self._token: TokenResponse | None = None
        self._deadline = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> TokenResponse:
        """The cached token, fetched when missing or about to expire."""
        async with self._lock:
            if self._token is None or time.monotonic() >= self._deadline:
                self._token = await self._fetch()
            return self._token

    async def renew(self, stale: TokenResponse) -> None:
        """Replace a token the PSP refused, unless a concurrent call already did."""
        async with self._lock:
            if self._token is stale:
                self._token = await self._fetch()

    async def _fetch(self) -> TokenResponse:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        try:
            response = await self._http.post(self._url, data=form, auth=self._credentials)
        except httpx.TransportError as exc:  # a POST: never retried blindly
            raise await self._transport_error(exc, "token") from exc
        if not response.is_success:
            raise token_error(response)
        try:
            token = TokenResponse.model_validate_json(response.content)
        except ValidationError:
            raise PspError(
                "the token endpoint answered without an access_token", step="token"
            ) from None
        if token.token_type.lower() != "bearer":
            raise PspError(
                f"the token endpoint issued a {token.token_type!r} token, not a Bearer one",
                step="token",
            )
        lifetime = (
            token.expires_in if token.expires_in and token.expires_in > 0 else DEFAULT_LIFETIME
        )
        self._deadline = time.monotonic() + lifetime - min(60.0, lifetime / 10)
        log.info("psp token issued by %s, valid %ss", self._url, lifetime)
        return token


def token_error(response: httpx.Response) -> PspError:
    """The token endpoint's refusal: OAuth2's `{"error", "error_description"}` or a problem."""
    status, url = response.status_code, response.request.url
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        said = f"{status} {body['error']}"
        if isinstance(body.get("error_description"), str):
            said += f": {body['error_description']}"
    else:
        said = describe(response, problem_of(response))
    if certificate_refused_by_proxy(response, problem_of(response)):
        return PspTlsError(f"the PSP refused the client certificate ({said})", step="tls")
    if retryable(status):
        return PspUnavailableError(
            f"the token endpoint failed ({said})", step="token", psp_status=status
        )
    if status in (404, 405):
        return PspAuthError(
            f"no token endpoint at {url} ({said}): set token_url, PSPs differ "
            "(/oauth/token, /oauth/v2/token...)",
            step="token",
            psp_status=status,
        )
    if 400 <= status < 500:
        return PspAuthError(
            f"the PSP refused the client credentials ({said})", step="token", psp_status=status
        )
    return PspError(
        f"unexpected answer from the token endpoint ({said})", step="token", psp_status=status
    )
