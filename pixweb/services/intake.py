"""The standard webhook intake: a PSP's batch of Pix, confirmed with the PSP, recorded once.

A delivery names the Pix to look at; it is never trusted for what they were. A webhook can
be authentic and still forged (bacen/pix-api#239: a merchant registers a victim's URL as its
own webhook at the same PSP and pays itself), so each `endToEndId` not yet recorded is read
back with `GET /pix/{e2eid}` on the merchant's own PSP connection, and recorded from that
answer (amount, txid, horario, payer) through `received.record_received_pix`:

- the whole batch is validated first: a malformed one is refused and nothing is recorded;
- a Pix already recorded is skipped without a call: a repeated delivery changes nothing;
- a Pix the PSP does not know (404), or reports for another Pix key, is refused: logged,
  returned with its reason (the route counts it), credited nothing; the others proceed;
- the PSP unreachable or failing for any item is a PspUnavailableError raised before
  anything is recorded, so the PSP delivers the batch again (reconciliation finds it too).

The refunds an item names (`devolucoes`: the PSP also notifies those) are read back one by
one with `GET /pix/{e2eid}/devolucao/{id}` and handed to `refunds.confirm_reported`, whose
one path settles them (or records one the PSP made by itself) once.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError

from pixweb import money, validation
from pixweb.broker import Broker
from pixweb.errors import (
    ControlCharacterError,
    InvalidInputError,
    NotFoundError,
    PspError,
    PspNotFoundError,
    PspUnavailableError,
    UnsafeUrlError,
)
from pixweb.models import PixOutcome, PixSource, PspConnection, ReceivedPix
from pixweb.psp.client import PspClient
from pixweb.psp.schemas import Pix, WebhookPayload, centavos
from pixweb.services import received, refunds, sql
from pixweb.services.psp_clients import PspClients
from pixweb.services.psp_connections import find_by_webhook_token

log = logging.getLogger(__name__)

READBACK_SECONDS = 20.0  # the whole batch's read-back: PSPs give up on a webhook near 30 s
READBACK_CONCURRENCY = 8
UNKNOWN_TOKEN = "unknown webhook token"
# What connect issues (token_urlsafe): anything else names no connection, unhashed.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


class ItemStatus(StrEnum):
    RECORDED = "recorded"  # recorded now, from the PSP's answer
    ALREADY_RECORDED = "already_recorded"  # known before: nothing changed
    REFUSED = "refused"  # not confirmed by the PSP: credited nothing


class Refusal(StrEnum):
    UNKNOWN_TO_PSP = "unknown_to_psp"  # GET /pix/{e2eid}: 404
    OTHER_KEY = "other_key"  # the PSP reports it paid to another Pix key
    OTHER_PIX = "other_pix"  # the PSP answered about another endToEndId
    UNUSABLE = "unusable"  # an amount pixweb cannot hold


@dataclass(frozen=True)
class ItemResult:
    end_to_end_id: str
    status: ItemStatus
    outcome: PixOutcome | None = None
    reason: Refusal | None = None
    detail: str | None = None


def parse_batch(body: object) -> WebhookPayload:
    """The delivery as typed Pix; InvalidInputError naming each bad field (`pix[2].valor`)."""
    try:
        return WebhookPayload.model_validate(body)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for error in exc.errors():
            fields.setdefault(_where(error["loc"]), error["msg"].removeprefix("Value error, "))
        raise InvalidInputError(
            f"invalid fields: {', '.join(fields)}; nothing was recorded", fields=fields
        ) from None


def _where(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "body"


async def find_connection(token: str) -> PspConnection:
    """The PSP connection whose webhook URL carries `token`; NotFoundError otherwise.

    Looked up by the token's SHA-256 (an indexed equality on a digest: how long it takes
    says nothing about the token)."""
    connection = await find_by_webhook_token(token) if _TOKEN.fullmatch(token) else None
    if connection is None:
        raise NotFoundError(UNKNOWN_TOKEN)
    return connection


async def receive_batch(
    connection: PspConnection, batch: WebhookPayload, *, clients: PspClients, broker: Broker
) -> list[ItemResult]:
    """Confirm each new Pix of the batch with the PSP, then record the confirmed ones;
    return one result per item of the batch, in its order."""
    asked = list(dict.fromkeys(pix.end_to_end_id for pix in batch.pix))
    known = await sql.values(ReceivedPix, "end_to_end_id", end_to_end_id__in=asked)
    results: dict[str, ItemResult] = {
        str(e2eid): ItemResult(str(e2eid), ItemStatus.ALREADY_RECORDED) for e2eid in known
    }
    new = [e2eid for e2eid in asked if e2eid not in results]
    if new:
        answers = await _read_back(await _client(connection, clients), new)
        sent = {pix.end_to_end_id: pix for pix in batch.pix}
        confirmed: list[Pix] = []
        for e2eid in new:
            verdict = _verdict(connection, e2eid, answers[e2eid])
            if isinstance(verdict, Pix):
                confirmed.append(_compared(sent[e2eid], verdict, connection))
                continue
            results[e2eid] = verdict
            log.warning(
                "merchant %s: webhook item %s refused (%s): %s",
                connection.merchant_id,
                e2eid,
                verdict.reason,
                verdict.detail,
            )
        for pix in confirmed:  # every read-back done: now record
            results[pix.end_to_end_id] = await record_confirmed(
                pix, merchant_id=connection.merchant_id, source=PixSource.WEBHOOK, broker=broker
            )
    await _refunds_reported(connection, batch, clients, broker)
    return [results[pix.end_to_end_id] for pix in batch.pix]


async def _refunds_reported(
    connection: PspConnection, batch: WebhookPayload, clients: PspClients, broker: Broker
) -> None:
    reported = {pix.end_to_end_id: [d.id for d in pix.devolucoes] for pix in batch.pix}
    reported = {e2eid: ids for e2eid, ids in reported.items() if ids}
    if not reported:
        return
    client = await _client(connection, clients)
    for e2eid, ids in reported.items():
        await refunds.confirm_reported(connection.merchant_id, e2eid, ids, client, broker=broker)


async def record_confirmed(
    pix: Pix, *, merchant_id: int, source: PixSource, broker: Broker
) -> ItemResult:
    """Record a Pix as the merchant's PSP reported it (the intake's)."""
    record, new = await received.record_received_pix(
        incoming(pix, merchant_id=merchant_id, source=source), broker=broker
    )
    status = ItemStatus.RECORDED if new else ItemStatus.ALREADY_RECORDED
    return ItemResult(pix.end_to_end_id, status, outcome=record.outcome)


def incoming(pix: Pix, *, merchant_id: int, source: PixSource) -> received.Incoming:
    """A Pix as the merchant's PSP reported it (the intake's and reconciliation's), checked
    for recording: InvalidInputError for an amount or text no record may hold."""
    payer = pix.pagador
    return received.incoming(
        merchant_id=merchant_id,
        end_to_end_id=pix.end_to_end_id,
        amount_cents=centavos(pix.valor),
        txid=pix.txid,
        paid_at=pix.horario,
        payer_name=_text(payer.nome if payer else None),
        payer_document=(payer.cpf or payer.cnpj) if payer else None,
        source=source,
    )


def _text(value: str | None) -> str | None:
    """A name as the PSP wrote it, or none when it holds what no text may (control chars)."""
    try:
        return validation.check_text("payer_name", value) if value else None
    except ControlCharacterError:
        return None


async def _client(connection: PspConnection, clients: PspClients) -> PspClient:
    try:
        client = await clients.for_connection(connection)
    except UnsafeUrlError as exc:  # the PSP's address now resolves where pixweb never calls
        detail = f"the PSP's address is refused now: {exc.detail}"
        raise PspUnavailableError(detail, step="pix") from None
    if client is None:  # a sandbox connection where the sandbox is off (production)
        raise NotFoundError(UNKNOWN_TOKEN)
    return client


async def _read_back(psp: PspClient, e2eids: list[str]) -> dict[str, Pix | None]:
    """The PSP's answer for each e2eid (None: it does not know it); PspUnavailableError when
    any cannot be had, the other calls then cancelled."""
    answers: dict[str, Pix | None] = {}
    limit = asyncio.Semaphore(READBACK_CONCURRENCY)

    async def read(e2eid: str) -> None:
        async with limit:
            try:
                answers[e2eid] = await psp.get_pix(e2eid)
            except PspNotFoundError:
                answers[e2eid] = None

    try:
        async with asyncio.timeout(READBACK_SECONDS), asyncio.TaskGroup() as group:
            for e2eid in e2eids:
                group.create_task(read(e2eid))
    except* PspError as failed:
        error = failed.exceptions[0]
        assert isinstance(error, PspError)
        raise PspUnavailableError(
            f"the PSP could not confirm the Pix ({error.detail}); nothing was recorded: "
            "deliver again",
            step=error.step,
            psp_status=error.psp_status,
        ) from None
    except* TimeoutError:
        raise PspUnavailableError(
            f"the PSP did not confirm the Pix within {READBACK_SECONDS:.0f} s; nothing was "
            "recorded: deliver again",
            step="pix",
        ) from None
    return answers


def _verdict(connection: PspConnection, e2eid: str, answer: Pix | None) -> Pix | ItemResult:
    """The PSP's answer when it confirms the Pix for this merchant, or the refusal."""

    def refused(reason: Refusal, detail: str) -> ItemResult:
        return ItemResult(e2eid, ItemStatus.REFUSED, reason=reason, detail=detail)

    if answer is None:
        return refused(Refusal.UNKNOWN_TO_PSP, "the merchant's PSP does not know this Pix")
    if answer.end_to_end_id != e2eid:
        return refused(Refusal.OTHER_PIX, f"the PSP answered about {answer.end_to_end_id}")
    if answer.chave is not None and not _same_key(answer.chave, connection.chave):
        return refused(Refusal.OTHER_KEY, "the PSP reports this Pix paid to another Pix key")
    if not 0 < centavos(answer.valor) <= money.MAX_CENTS:
        return refused(Refusal.UNUSABLE, f"an amount pixweb cannot record: {answer.valor}")
    return answer


def _same_key(reported: str, ours: str) -> bool:
    # DICT keys are case-insensitive where they hold letters (e-mail, EVP).
    return reported.strip().casefold() == ours.strip().casefold()


def _compared(sent: Pix, answer: Pix, connection: PspConnection) -> Pix:
    """The PSP's answer, after logging where the delivery said otherwise."""
    differs = [
        f"{name}: sent {getattr(sent, name)}, PSP {getattr(answer, name)}"
        for name in ("valor", "txid", "horario")
        if getattr(sent, name) != getattr(answer, name)
    ]
    if differs:
        log.warning(
            "merchant %s: webhook item %s differs from the PSP's answer (%s): recorded as the "
            "PSP says",
            connection.merchant_id,
            answer.end_to_end_id,
            "; ".join(differs),
        )
    return answer
