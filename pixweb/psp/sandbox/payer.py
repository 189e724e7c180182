"""What payers do, at the sandbox PSP (`/sandbox/psp/...`): pay a charge as a scenario
says, or pay the merchant's key without txid. Any valid token of the merchant will do."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, StringConstraints
from quart import Blueprint, Response
from quart_schema import hide

from pixweb.psp.sandbox import scenarios
from pixweb.psp.sandbox.http import TXID, body, caller, get_worker, json_response, segment
from pixweb.psp.schemas import ApiModel, Valor, WebhookPayload, centavos

blueprint = Blueprint("payer", __name__)


class _Simulation(ApiModel):
    model_config = ConfigDict(extra="forbid")

    scenario: scenarios.Scenario = scenarios.Scenario.EXACT
    valor: Valor | None = None


@blueprint.post("/cob/<txid>/simulate")
@hide
async def simulate_payment(txid: str) -> Response:
    """Pay the charge as a scenario says (`{"scenario": "twice", "valor"?}`): the Pix made."""
    merchant = await caller(None)
    segment(txid, TXID, "txid", scenarios.INVALID)
    asked = await body(_Simulation, scenarios.INVALID, scenarios.INVALID_DETAIL, "simulacao")
    cents = None if asked.valor is None else centavos(asked.valor)
    made = await scenarios.pay_cob(
        merchant.id, txid, asked.scenario, value_cents=cents, worker=get_worker()
    )
    return json_response(WebhookPayload(pix=made), 201)


class _KeyPayment(ApiModel):
    model_config = ConfigDict(extra="forbid")

    chave: Annotated[str, StringConstraints(min_length=1, max_length=77)]
    valor: Valor


@blueprint.post("/pay-key")
@hide
async def pay_key() -> Response:
    """A Pix to the caller's key without txid (`{"chave", "valor"}`): the Pix made."""
    merchant = await caller(None)
    asked = await body(_KeyPayment, scenarios.INVALID, scenarios.INVALID_DETAIL, "pagamento")
    made = await scenarios.pay_key(merchant.id, asked.chave, centavos(asked.valor))
    return json_response(made, 201)
