"""One POST of a merchant webhook: Standard Webhooks signing, the safety checks made at
delivery time, and what the receiver answered (or what went wrong), never raised.

The URL is checked again when it is called (`netguard.check_url`): a merchant's host could
have been re-pointed at a private address since it was saved (DNS rebinding). The request
then goes to the very address that was checked, with the original name in `Host` and in
TLS's SNI (so the certificate is verified for the name), instead of letting the HTTP client
resolve the name a second time. Redirects are not followed; at most READ_CAP bytes of the
answer are read and the first STORED_BYTES kept; the whole exchange is bounded by `timeout`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from datetime import datetime

import httpx
from standardwebhooks import Webhook

from pixweb import netguard
from pixweb.errors import PixwebError
from pixweb.netguard import UrlPolicy

USER_AGENT = "pixweb-webhooks/1"
STORED_BYTES = 1024  # of the answer, kept in the delivery log
READ_CAP = 16 * 1024  # read no further: a receiver cannot make pixweb download a file
ERROR_CHARS = 500  # WebhookAttempt.error's size


def signed_headers(event_id: str, payload: str, secrets: list[str], at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for `payload`: one `v1,` signature per secret (the
    current one and, during a rotation's grace period, the previous one), space-separated."""
    signatures = " ".join(
        Webhook(secret).sign(msg_id=event_id, timestamp=at, data=payload) for secret in secrets
    )
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "accept-encoding": "identity",  # the answer's bytes as sent: the cap is on what is read
    }


@dataclass(frozen=True)
class Answer:
    """What one attempt came to: a status (and the answer's start), or an error."""

    status_code: int | None
    body: str | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Sender:
    """The HTTP client of the delivery worker: a keep-alive pool per destination (name,
    checked address, port), so a connection verified for one name is never reused for
    another name at the same address, and a slow endpoint's connections never lengthen the
    pool another endpoint's requests are matched against."""

    def __init__(self, *, policy: UrlPolicy, timeout: float, max_connections: int = 16) -> None:
        self.policy, self.timeout, self.max_connections = policy, timeout, max_connections
        self._pools: dict[tuple[str, str, str, int | None], httpx.AsyncClient] = {}
        self._tls: ssl.SSLContext | None = None  # one for every pool: loading CAs takes ~80 ms

    def _client(self, key: tuple[str, str, str, int | None]) -> httpx.AsyncClient:
        client = self._pools.get(key)
        if client is None:
            self._tls = self._tls or httpx.create_ssl_context(trust_env=False)
            client = self._pools[key] = httpx.AsyncClient(
                verify=self._tls,
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=self.max_connections, keepalive_expiry=30),
                follow_redirects=False,
                trust_env=False,
            )
        return client

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for client in pools:
            await client.aclose()

    async def post(self, url: str, payload: bytes, headers: dict[str, str]) -> Answer:
        """POST `payload` to `url`; every failure becomes the answer's `error`."""
        started = time.monotonic()
        status: int | None = None
        head: bytes = b""
        error: str | None = None
        try:
            async with asyncio.timeout(self.timeout):
                status, head = await self._exchange(url, payload, headers)
        except PixwebError as exc:
            error = f"refused: {exc.detail}"
        except TimeoutError:
            error = f"timed out after {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_ms = round((time.monotonic() - started) * 1000)
        body = _text(head[:STORED_BYTES]) if status is not None else None
        return Answer(
            status, body, _text(error.encode())[:ERROR_CHARS] if error else None, duration_ms
        )

    async def _exchange(
        self, url: str, payload: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        addresses = await netguard.check_url(url, self.policy)
        return await self.send_to(url, addresses[0] if addresses else None, payload, headers)

    async def send_to(
        self, url: str, address: netguard.IPAddress | None, payload: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """POST over a connection to `address` (None: wherever the name resolves), the name
        kept in `Host` and in TLS's SNI, where the certificate is verified for it; return the
        status and at most READ_CAP bytes of the answer."""
        target = httpx.URL(url)
        http = self._client((target.scheme, target.host, str(address), target.port))
        request = http.build_request("POST", target, content=payload, headers=headers)
        if address is not None:  # build_request already set `Host` from the name
            request.extensions["sni_hostname"] = request.url.host
            request.url = request.url.copy_with(host=str(address))
        response = await http.send(request, stream=True)
        try:
            head = bytearray()
            async for chunk in response.aiter_raw():
                head += chunk
                if len(head) >= READ_CAP:
                    break
            return response.status_code, bytes(head)
        finally:
            await response.aclose()


def _text(raw: bytes) -> str:
    """What a receiver sent, storable as text: invalid UTF-8 and NUL (which PostgreSQL's text
    refuses) become U+FFFD."""
    return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")
