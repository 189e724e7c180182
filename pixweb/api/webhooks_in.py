"""The standard API Pix webhook intake: `POST /webhooks/pix/<token>[/pix]`, where the
merchant's PSP delivers `{"pix": [Pix, ...]}` (most PSPs append `/pix` to the registered URL,
some do not). The token in the path names the merchant (unknown: 404); an optional IP
allow-list (`PIXWEB_WEBHOOK_ALLOW_IPS`) refuses other senders (403); mTLS is the reverse
proxy's (README). `services.intake` confirms each Pix with the PSP and records it.
"""

from __future__ import annotations

import ipaddress
import logging

from pydantic import BaseModel, Field
from quart import Blueprint, Response, request
from quart_schema import document_request, tag, validate_response

from pixweb import jsonload, throttle
from pixweb.api.errors import error_response
from pixweb.api.openapi import errors
from pixweb.deps import get_broker, get_config, get_metrics, get_psp_clients
from pixweb.errors import ForbiddenError
from pixweb.models import PixOutcome, PixSource
from pixweb.psp.schemas import WebhookPayload
from pixweb.services import intake
from pixweb.services.intake import ItemResult, ItemStatus, Refusal

blueprint = Blueprint("api_webhooks_in", __name__)
log = logging.getLogger(__name__)


class IntakeItemOut(BaseModel):
    end_to_end_id: str
    status: ItemStatus = Field(
        description="recorded: confirmed by the PSP and recorded now. already_recorded: known"
        " before, nothing changed. refused: the PSP did not confirm it; nothing credited"
    )
    outcome: PixOutcome | None = Field(description="What the Pix did to its charge, if recorded")
    reason: Refusal | None = Field(description="Why it was refused, if it was")
    detail: str | None = None

    @classmethod
    def of(cls, item: ItemResult) -> IntakeItemOut:
        return cls(
            end_to_end_id=item.end_to_end_id,
            status=item.status,
            outcome=item.outcome,
            reason=item.reason,
            detail=item.detail,
        )


class IntakeOut(BaseModel):
    recorded: int
    already_recorded: int
    refused: int
    items: list[IntakeItemOut] = Field(description="One per item of the delivery, in its order")


@blueprint.post("/webhooks/pix/<token>")
@blueprint.post("/webhooks/pix/<token>/pix")
@tag(["psp"])
@document_request(WebhookPayload)
@validate_response(IntakeOut)
@errors(403, 503)
async def receive_pix(token: str) -> IntakeOut | Response:
    """The merchant's PSP delivers received Pix. Each new one is confirmed with
    `GET /pix/{e2eid}` at the merchant's PSP and recorded from its answer; 200 once every
    item is recorded, already known, or refused (the PSP does not know it). A malformed
    batch is a 400 naming `pix[i].field`, the PSP unreachable a 503: nothing recorded."""
    _check_sender()
    connection = await intake.find_connection(token)
    try:
        body = jsonload.loads(await request.get_data())
    except ValueError as exc:  # not UTF-8, not JSON, nested too deep
        return error_response(400, "invalid_body", f"the body is not valid JSON ({exc})")
    if not isinstance(body, dict):
        return error_response(400, "invalid_body", "the body must be a JSON object")
    batch = intake.parse_batch(body)
    results = await intake.receive_batch(
        connection, batch, clients=get_psp_clients(), broker=get_broker()
    )
    metrics = get_metrics()
    counts = dict.fromkeys(ItemStatus, 0)
    for item in results:
        counts[item.status] += 1
        if item.reason is not None:
            metrics.webhook_refused.labels(item.reason).inc()
    metrics.pix_recorded.labels(PixSource.WEBHOOK).inc(counts[ItemStatus.RECORDED])
    return IntakeOut(
        recorded=counts[ItemStatus.RECORDED],
        already_recorded=counts[ItemStatus.ALREADY_RECORDED],
        refused=counts[ItemStatus.REFUSED],
        items=[IntakeItemOut.of(item) for item in results],
    )


def _check_sender() -> None:
    """Refuse a sender outside PIXWEB_WEBHOOK_ALLOW_IPS, when it is set."""
    allowed = get_config().webhook_allow_ips
    if not allowed:
        return
    address = throttle.client_address()  # behind trusted proxies, the client they name
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    if ip is None or not any(ip in network for network in allowed):
        log.warning("PSP webhook from %s refused: not in PIXWEB_WEBHOOK_ALLOW_IPS", address)
        raise ForbiddenError("this address may not deliver PSP webhooks")
