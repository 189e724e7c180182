"""The merchant's webhook endpoints: register, read, change, delete, rotate the secret,
send a test event, read the delivery log and resend one event.

The signing secret (`whsec_...`) is in the answer twice only: when the endpoint is created and
when its secret is rotated. A resend names a delivery of the log
(`/webhook-endpoints/<id>/deliveries/<delivery_id>/resend`) and makes a new delivery of the same
event, so the receiver sees the same `webhook-id` again.
"""

from __future__ import annotations

from datetime import timedelta

from quart import Blueprint
from quart_schema import tag, validate_querystring, validate_request, validate_response

from pixweb.api.openapi import errors
from pixweb.api.security import bearer_required
from pixweb.api.webhook_schemas import (
    DeliveryList,
    DeliveryOut,
    DeliveryQuery,
    EndpointIn,
    EndpointList,
    EndpointOut,
    EndpointPatch,
    EndpointWithSecret,
    RotateIn,
)
from pixweb.deps import current_merchant, get_broker, get_config, requires_scope
from pixweb.netguard import UrlPolicy
from pixweb.services import webhook_endpoints as endpoints
from pixweb.services import webhook_log

blueprint = Blueprint("api_webhook_endpoints", __name__)


def _settings() -> tuple[str, UrlPolicy]:
    config = get_config()
    return config.encryption_key, endpoints.url_policy(config)


@blueprint.post("/webhook-endpoints")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@errors(422)
@validate_request(EndpointIn)
@validate_response(EndpointWithSecret, 201)
async def create_webhook_endpoint(data: EndpointIn) -> tuple[EndpointWithSecret, int]:
    """Register an endpoint; the answer holds its signing secret, shown this once."""
    merchant = await current_merchant()
    key, policy = _settings()
    created = await endpoints.create(
        merchant.id,
        url=data.url,
        events=data.events,
        description=data.description,
        key=key,
        policy=policy,
    )
    body = EndpointOut.of(created.endpoint).model_dump()
    return EndpointWithSecret(**body, secret=created.secret), 201


@blueprint.get("/webhook-endpoints")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@validate_response(EndpointList)
async def list_webhook_endpoints() -> EndpointList:
    """List your endpoints, oldest first (never a secret)."""
    merchant = await current_merchant()
    return EndpointList(
        items=[EndpointOut.of(e) for e in await endpoints.list_endpoints(merchant.id)]
    )


@blueprint.get("/webhook-endpoints/<int:endpoint_id>")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@validate_response(EndpointOut)
async def get_webhook_endpoint(endpoint_id: int) -> EndpointOut:
    """One of your endpoints."""
    merchant = await current_merchant()
    return EndpointOut.of(await endpoints.get(merchant.id, endpoint_id))


@blueprint.patch("/webhook-endpoints/<int:endpoint_id>")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@errors(422)
@validate_request(EndpointPatch)
@validate_response(EndpointOut)
async def update_webhook_endpoint(endpoint_id: int, data: EndpointPatch) -> EndpointOut:
    """Change the URL, the events, the description, or enable/disable the endpoint."""
    merchant = await current_merchant()
    _, policy = _settings()
    row = await endpoints.update(merchant.id, endpoint_id, data.changes(), policy=policy)
    return EndpointOut.of(row)


@blueprint.delete("/webhook-endpoints/<int:endpoint_id>")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
async def delete_webhook_endpoint(endpoint_id: int) -> tuple[str, int]:
    """Delete an endpoint: nothing more is sent to it (what was pending fails)."""
    merchant = await current_merchant()
    await endpoints.delete(merchant.id, endpoint_id)
    return "", 204


@blueprint.post("/webhook-endpoints/<int:endpoint_id>/rotate-secret")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@validate_request(RotateIn)
@validate_response(EndpointWithSecret)
async def rotate_webhook_secret(endpoint_id: int, data: RotateIn) -> EndpointWithSecret:
    """A new signing secret, shown this once; the previous one signs too during the grace
    period (each request then carries both signatures)."""
    merchant = await current_merchant()
    key, _ = _settings()
    grace = timedelta(seconds=data.grace_seconds)
    created = await endpoints.rotate_secret(merchant.id, endpoint_id, grace=grace, key=key)
    body = EndpointOut.of(created.endpoint).model_dump()
    return EndpointWithSecret(**body, secret=created.secret)


@blueprint.post("/webhook-endpoints/<int:endpoint_id>/test")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@errors(409)
@validate_response(DeliveryOut, 201)
async def test_webhook_endpoint(endpoint_id: int) -> tuple[DeliveryOut, int]:
    """Send a `webhook.test` event to this endpoint now (409 when it is disabled)."""
    merchant = await current_merchant()
    view = await webhook_log.send_test(merchant.id, endpoint_id, broker=get_broker())
    return DeliveryOut.of(view), 201


@blueprint.get("/webhook-endpoints/<int:endpoint_id>/deliveries")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@validate_querystring(DeliveryQuery)
@validate_response(DeliveryList)
async def list_webhook_deliveries(endpoint_id: int, query_args: DeliveryQuery) -> DeliveryList:
    """The endpoint's deliveries, newest first, each with its attempts."""
    merchant = await current_merchant()
    page = await webhook_log.list_deliveries(
        merchant.id, endpoint_id, limit=query_args.limit, cursor=query_args.cursor
    )
    return DeliveryList(items=[DeliveryOut.of(v) for v in page.items], next_cursor=page.next_cursor)


@blueprint.post("/webhook-endpoints/<int:endpoint_id>/deliveries/<bigint:delivery_id>/resend")
@tag(["webhooks"])
@bearer_required
@requires_scope("webhooks:manage")
@errors(409)
@validate_response(DeliveryOut, 201)
async def resend_webhook_delivery(endpoint_id: int, delivery_id: int) -> tuple[DeliveryOut, int]:
    """Send this delivery's event again: a new delivery with the same `webhook-id`."""
    merchant = await current_merchant()
    view = await webhook_log.resend(merchant.id, endpoint_id, delivery_id, broker=get_broker())
    return DeliveryOut.of(view), 201
