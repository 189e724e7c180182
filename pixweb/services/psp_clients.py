"""The PspClient of each connected merchant, one per process: what charges, the webhook
intake and reconciliation call the merchant's PSP with.

A client pools its TLS connections and keeps its OAuth2 token, so it is built once (the
stored secrets decrypted, the URLs checked again by netguard) and reused until the stored
credentials change, which any process may do: every use reads the merchant's row (one
indexed query) and compares a fingerprint of its credentials. A replaced client is closed
after a grace period, so calls still running on it finish; all are closed on shutdown.

A sandbox connection (`PspConnection.sandbox`, development only) reaches pixweb's own
sandbox PSP: plain http, no certificate, the client credentials derived from the app's
secret (`pixweb.psp.sandbox.auth`), its URL pixweb's own rather than one a merchant chose
(so netguard does not judge it). Without `sandbox_secret_key` (production) such a row
gives no client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import Any

from pixweb import crypto, netguard
from pixweb.errors import EncryptionError
from pixweb.models import PspConnection
from pixweb.psp.client import PspClient
from pixweb.psp.sandbox import auth as sandbox_auth
from pixweb.services import sql

log = logging.getLogger(__name__)

RETIRE_AFTER_SECONDS = 60.0
ENCRYPTED_FIELDS = ("client_secret", "private_key_pem", "webhook_url")


def associated_data(merchant_id: int, field: str) -> str:
    """What binds a stored ciphertext to its merchant and field (see pixweb.crypto)."""
    return f"psp_connection:merchant:{merchant_id}:{field}"


def encrypt_field(key: str, merchant_id: int, field: str, value: str) -> str:
    return crypto.encrypt(key, value.encode(), associated_data=associated_data(merchant_id, field))


def decrypt_field(key: str, row: PspConnection, field: str) -> str:
    """A stored secret in the clear; EncryptionError (logged) naming the merchant and field."""
    try:
        plain = crypto.decrypt(
            key, getattr(row, field), associated_data=associated_data(row.merchant_id, field)
        )
    except EncryptionError as exc:
        log.error("merchant %s: the PSP %s cannot be read: %s", row.merchant_id, field, exc)
        raise EncryptionError(
            f"the PSP connection's {field} cannot be decrypted: {exc.detail}"
        ) from None
    return plain.decode()


def _fingerprint(row: PspConnection) -> str:
    parts = (
        str(row.id),
        row.base_url,
        row.token_url,
        row.client_id,
        row.client_secret,
        row.certificate_pem,
        row.private_key_pem,
        row.server_ca_pem or "",
        str(row.sandbox),
    )
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


class PspClients:
    """Per-process cache of the merchants' PspClients. `options` go to every PspClient
    (timeouts, retry policy).

    `sandbox_secret_key` (the app's secret; None in production) lets sandbox connections
    be used; `sandbox_connect` connects every merchant without a PSP to the sandbox when
    it first needs one (`pixweb.services.psp_sandbox`): development serving, not tests
    unless they ask."""

    def __init__(
        self,
        *,
        encryption_key: str,
        url_policy: netguard.UrlPolicy,
        sandbox_secret_key: str | None = None,
        sandbox_connect: bool = False,
        **options: Any,
    ) -> None:
        self.encryption_key = encryption_key
        self.url_policy = url_policy
        self.sandbox_secret_key = sandbox_secret_key
        self.sandbox_connect = sandbox_connect and sandbox_secret_key is not None
        self.options = options
        self._clients: dict[int, tuple[str, PspClient]] = {}
        self._retiring: dict[PspClient, asyncio.Task[None]] = {}

    def build(self, **credentials: Any) -> PspClient:
        """A new client (not cached) for these credentials; InvalidInputError for bad PEMs."""
        return PspClient(**credentials, **self.options)

    async def for_merchant(self, merchant_id: int) -> PspClient | None:
        """The merchant's client, or None when no PSP is connected. EncryptionError when the
        stored secrets cannot be decrypted (another PIXWEB_ENCRYPTION_KEY); UnsafeUrlError
        when the stored URLs no longer pass netguard."""
        row = await sql.get_or_none(PspConnection, merchant_id=merchant_id)
        if row is None:
            self.evict(merchant_id)
            return None
        return await self.for_connection(row)

    async def for_connection(self, row: PspConnection) -> PspClient | None:
        """`for_merchant` for a row the caller has just read (the webhook intake found the
        connection by its token): the client its credentials make, without reading it again.
        """
        merchant_id = row.merchant_id
        if row.sandbox and self.sandbox_secret_key is None:
            self.evict(merchant_id)
            return None
        fingerprint = _fingerprint(row)
        cached = self._clients.get(merchant_id)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        client = self._sandbox_client(row) if row.sandbox else await self._client(row)
        cached = self._clients.get(merchant_id)
        if cached is not None and cached[0] == fingerprint:  # built meanwhile by another call
            await client.aclose()
            return cached[1]
        self._install(merchant_id, fingerprint, client)
        return client

    async def _client(self, row: PspConnection) -> PspClient:
        for field in ("base_url", "token_url"):
            await netguard.check_url(getattr(row, field), self.url_policy, field=field)
        return self.build(
            base_url=row.base_url,
            token_url=row.token_url,
            client_id=row.client_id,
            client_secret=decrypt_field(self.encryption_key, row, "client_secret"),
            certificate_pem=row.certificate_pem,
            private_key_pem=decrypt_field(self.encryption_key, row, "private_key_pem"),
            server_ca_pem=row.server_ca_pem,
        )

    def _sandbox_client(self, row: PspConnection) -> PspClient:
        assert self.sandbox_secret_key is not None, "sandbox rows are skipped without it"
        client_id, secret = sandbox_auth.client_credentials(
            self.sandbox_secret_key, row.merchant_id
        )
        return self.build(
            base_url=row.base_url,
            token_url=row.token_url,
            client_id=client_id,
            client_secret=secret,
            plain_http=True,
        )

    def install(self, row: PspConnection, client: PspClient) -> None:
        """Keep a client just proven against the PSP for the row it was stored as."""
        self._install(row.merchant_id, _fingerprint(row), client)

    def _install(self, merchant_id: int, fingerprint: str, client: PspClient) -> None:
        previous = self._clients.get(merchant_id)
        self._clients[merchant_id] = (fingerprint, client)
        if previous is not None and previous[1] is not client:
            self._retire(previous[1])

    def evict(self, merchant_id: int) -> None:
        """Forget the merchant's client (disconnected); it is closed after the grace period."""
        previous = self._clients.pop(merchant_id, None)
        if previous is not None:
            self._retire(previous[1])

    def _retire(self, client: PspClient) -> None:
        async def close_later() -> None:
            await asyncio.sleep(RETIRE_AFTER_SECONDS)
            self._retiring.pop(client, None)
            await client.aclose()

        self._retiring[client] = asyncio.get_running_loop().create_task(close_later())

    async def aclose(self) -> None:
        """Close every client, the retiring ones at once (the server is stopping)."""
        retiring = list(self._retiring.items())
        self._retiring.clear()
        for _, task in retiring:
            task.cancel()  # a task cancelled before it ran never runs: close its client here
        for client, task in retiring:
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await client.aclose()
        clients = [client for _, client in self._clients.values()]
        self._clients.clear()
        for client in clients:
            await client.aclose()
