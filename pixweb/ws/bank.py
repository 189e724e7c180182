"""`/ws`: the second seed's JSON protocol for account holders, kept event for event.

Messages are `{"event": name, "data": {...}}`. The server greets with `conexao`; the client
sends `autenticar {token}` (→ `autenticado`, and the socket joins that merchant's room) and
`solicitar_saldo {token, correntista_id}` (→ `saldo_atualizado`); the room then receives
`notificacao` and `saldo_atualizado` on every movement, and `notificacao` alone for a
notice without one (a Pix to reconcile, a refund's outcome). Anything wrong → `erro`.
The token is a login JWT or an API key with the scope `account:read` (what the socket
streams); a socket joined with a key closes (1008) when the key is revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from quart import Blueprint, current_app, websocket

from pixweb import jsonload, money, validation
from pixweb.broker import Event, SubscriptionLaggedError
from pixweb.deps import get_broker, get_config, get_metrics
from pixweb.errors import AuthenticationError, NotFoundError
from pixweb.models import Merchant
from pixweb.services import api_keys, ledger, merchants
from pixweb.services.events import account_channel
from pixweb.ws.common import CLOSE_POLICY, CLOSE_TRY_AGAIN, receive_limited, serve_until_closed

blueprint = Blueprint("ws_bank", __name__)

MAX_MESSAGE = 64 * 1024
AUTH_TIMEOUT_SECONDS = 30.0  # an unauthenticated socket that stays silent is closed
RATE, BURST, MAX_REFUSED = 10.0, 20.0, 50  # messages per second, bucket size, then close
NOTIFICATION_FIELDS = ("tipo", "mensagem", "timestamp", "dados")  # the seed's `notificacao`
SCOPE = "account:read"  # balance, movements and notices: what an API key needs here


class _Bucket:
    """Token bucket: RATE messages a second on average, BURST at once."""

    def __init__(self) -> None:
        self.tokens, self.stamp, self.refused = BURST, time.monotonic(), 0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.stamp) * RATE)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.refused += 1
        return False


async def _emit(event: str, data: dict[str, Any]) -> None:
    await websocket.send(json.dumps({"event": event, "data": data}, ensure_ascii=False))


async def _error(message: str) -> None:
    await _emit("erro", {"mensagem": message})


class _Session:
    """One socket's state: who it is authenticated as, and the task pushing its room."""

    def __init__(self) -> None:
        self.merchant: Merchant | None = None
        self.key_id: int | None = None  # the API key the room was joined with, if one
        self.room: asyncio.Task[None] | None = None
        self.subscription = contextlib.AsyncExitStack()

    async def authenticate(self, data: dict[str, Any]) -> Merchant | None:
        token = data.get("token")
        if not isinstance(token, str) or not token:
            await _error("Token ausente")
            return None
        try:
            if not api_keys.is_api_key(token):
                self.key_id = None
                return await merchants.merchant_from_token(token, secret=get_config().secret_key)
            caller = await api_keys.authenticate(token)  # the database: revocations hold
        except AuthenticationError:
            await _error("Token inválido ou expirado")
            return None
        if SCOPE not in caller.scopes:
            await _error(f"Esta chave de API não tem o escopo {SCOPE}")
            return None
        self.key_id = caller.key_id
        return caller.merchant

    async def join(self, merchant: Merchant) -> None:
        """Enter the merchant's room: subscribed before `autenticado` is sent, so nothing
        that happens after the client reads it can be missed."""
        await self.leave()
        account = await ledger.get_account(merchant.id)
        channel = account_channel(merchant.id)
        events = await self.subscription.enter_async_context(get_broker().subscribe(channel))
        self.merchant = merchant
        room = _Room(account.id, merchant.name, self.key_id)
        self.room = asyncio.create_task(_forward(events, room))

    async def leave(self) -> None:
        if self.room is not None:
            self.room.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.room
            self.room = None
        await self.subscription.aclose()


@blueprint.websocket("/ws")
async def bank_socket() -> None:
    """Serve the JSON protocol until the client leaves, floods, or idles unauthenticated."""
    await websocket.accept()
    await _emit("conexao", {"mensagem": "Conectado ao servidor WebSocket"})
    session = _Session()
    with get_metrics().socket_open("bank"):
        try:
            await serve_until_closed(_serve(session))
        finally:
            await session.leave()


async def _serve(session: _Session) -> None:
    """Answer client messages; close on idling unauthenticated or flooding."""
    bucket = _Bucket()
    # A deadline from the connection, not a per-message timeout: chatter does not buy time.
    auth_timeout = current_app.config.get("PIXWEB_WS_AUTH_TIMEOUT", AUTH_TIMEOUT_SECONDS)
    deadline = time.monotonic() + auth_timeout
    while True:
        timeout = None if session.merchant else max(deadline - time.monotonic(), 0)
        try:
            raw = await asyncio.wait_for(receive_limited(MAX_MESSAGE), timeout)
        except TimeoutError:
            await websocket.close(CLOSE_POLICY, "authentication timeout")
            return
        if not bucket.take():
            if bucket.refused > MAX_REFUSED:
                await websocket.close(CLOSE_POLICY, "too many messages")
                return
            await _error("Muitas mensagens: aguarde um instante")
            continue
        await _handle(session, raw)


async def _handle(session: _Session, raw: str | bytes) -> None:
    try:
        message = jsonload.loads(raw)
    except jsonload.TooDeepError as exc:
        await _error(f"Mensagem inválida: JSON com mais de {exc.limit} níveis")
        return
    except ValueError:  # UnicodeDecodeError included
        await _error("Mensagem inválida: envie JSON")
        return
    if not isinstance(message, dict) or not isinstance(message.get("data", {}), dict):
        await _error('Mensagem inválida: use {"event": ..., "data": {...}}')
        return
    event, data = message.get("event"), message.get("data") or {}
    if event == "autenticar":
        if merchant := await session.authenticate(data):
            await session.join(merchant)
            await _emit(
                "autenticado",
                {
                    "mensagem": "Autenticado com sucesso",
                    "usuario_id": merchant.id,
                    "email": merchant.email,
                },
            )
    elif event == "solicitar_saldo":
        if merchant := await session.authenticate(data):
            await _send_balance(merchant, data.get("correntista_id"))
    else:
        # Echoed safely: an unpaired surrogate could not even be sent (no UTF-8 for it).
        await _error(f"Evento desconhecido: {validation.shown(str(event)[:50])}")


async def _send_balance(merchant: Merchant, requested: object) -> None:
    try:
        account = await ledger.get_account(merchant.id)
    except NotFoundError:
        await _error("Conta não encontrada")
        return
    if requested != account.id:
        await _error("Acesso negado a esta conta")
        return
    await _emit("saldo_atualizado", _balance(account.id, merchant.name, account.balance_cents))


def _balance(account_id: int, name: str, cents: int) -> dict[str, Any]:
    return {
        "CorrentistaID": account_id,
        "NomeCorrentista": name,
        "Saldo": money.format_amount(cents),
    }


@dataclass(frozen=True)
class _Room:
    account_id: int
    name: str
    key_id: int | None  # the API key it was joined with: its revocation ends the socket


async def _forward(events: AsyncIterator[Event], room: _Room) -> None:
    """Forward the merchant's movements as `notificacao` + `saldo_atualizado`, and its
    other notices as `notificacao`; close when the socket's API key is revoked."""
    try:
        await _forward_events(events, room)
    except SubscriptionLaggedError:
        # The room missed events: the client reconnects and asks for its balance again.
        await websocket.close(CLOSE_TRY_AGAIN, "fell behind: reconnect")


async def _forward_events(events: AsyncIterator[Event], room: _Room) -> None:
    async for event in events:
        kind = event.get("type")
        if kind == api_keys.REVOKED_EVENT and event.get("key_id") == room.key_id:
            await websocket.close(CLOSE_POLICY, "API key revoked")
            return
        if kind not in ("movement", "notification"):
            continue
        notification = {k: event["notification"][k] for k in NOTIFICATION_FIELDS}
        await _emit("notificacao", notification)
        if kind == "movement":
            balance = _balance(room.account_id, room.name, event["balance_cents"])
            await _emit("saldo_atualizado", balance)
