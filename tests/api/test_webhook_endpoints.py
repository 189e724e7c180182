"""The merchant's webhook endpoints over the JSON API: CRUD, the secret shown once,
validation, isolation between merchants, URL safety, rotation, test events and resends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from pixweb.config import Config
from pixweb.models import DeliveryStatus, Merchant, WebhookDelivery, WebhookEndpoint, WebhookEvent
from pixweb.services.clock import utcnow
from pixweb.services.outbox import TEST_EVENT
from pixweb.services.webhook_endpoints import signing_secrets
from tests.conftest import bearer, make_merchant
from tests.support import PRODUCTION

URL = "https://8.8.8.8/webhooks/pix"  # public, and an address: nothing to resolve
PATH = "/webhook-endpoints"


async def create(client: Client, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    payload = {"url": URL, "events": ["charge.paid"], **body}
    response = await client.post(PATH, json=payload, headers=auth)
    data = await response.get_json()
    assert response.status_code == 201, data
    return dict(data)


async def test_create_shows_the_secret_once_and_lists_without_it(
    client: Client, auth: dict[str, str]
) -> None:
    created = await create(
        client, auth, events=["pix.received", "charge.paid", "charge.paid"], description="Loja"
    )
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["charge.paid", "pix.received"]  # catalogue order, once each
    assert created["enabled"] and created["description"] == "Loja"
    one = await (await client.get(f"{PATH}/{created['id']}", headers=auth)).get_json()
    listed = await (await client.get(PATH, headers=auth)).get_json()
    assert "secret" not in one and [e["id"] for e in listed["items"]] == [created["id"]]
    assert "secret" not in listed["items"][0]
    assert created["secret"] not in str(await WebhookEndpoint.get(id=created["id"]).values())


async def test_patch_changes_fields_and_re_enabling_forgets_failures(
    client: Client, auth: dict[str, str]
) -> None:
    created = await create(client, auth, description="velha")
    path = f"{PATH}/{created['id']}"
    response = await client.patch(path, json={"enabled": False}, headers=auth)
    body = await response.get_json()
    assert response.status_code == 200, body
    assert not body["enabled"] and body["disabled_reason"] == "desativado pelo lojista"
    await WebhookEndpoint.filter(id=created["id"]).update(failing_since=utcnow())
    patch = {"enabled": True, "events": ["refund.failed"], "description": None}
    body = await (await client.patch(path, json=patch, headers=auth)).get_json()
    assert body["enabled"] and body["disabled_reason"] is None and body["failing_since"] is None
    assert body["events"] == ["refund.failed"] and body["description"] is None
    body = await (
        await client.patch(path, json={"url": "https://1.1.1.1/h"}, headers=auth)
    ).get_json()
    assert body["url"] == "https://1.1.1.1/h" and body["events"] == ["refund.failed"]


async def test_delete_hides_the_endpoint_and_fails_what_was_pending(
    client: Client, auth: dict[str, str]
) -> None:
    created = await create(client, auth)
    path = f"{PATH}/{created['id']}"
    delivery = await (await client.post(f"{path}/test", headers=auth)).get_json()
    assert (await client.delete(path, headers=auth)).status_code == 204
    assert (await client.get(path, headers=auth)).status_code == 404
    assert (await client.delete(path, headers=auth)).status_code == 404
    assert (await (await client.get(PATH, headers=auth)).get_json())["items"] == []
    row = await WebhookDelivery.get(id=delivery["id"])
    assert row.status == DeliveryStatus.FAILED and row.completed_at is not None
    assert await WebhookDelivery.filter(status=DeliveryStatus.PENDING).count() == 0


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"url": URL, "events": []}, 400, "events"),
        ({"url": URL, "events": ["charge.exploded"]}, 400, "events"),
        ({"url": URL}, 400, "events"),
        ({"url": "ftp://8.8.8.8/x", "events": ["charge.paid"]}, 400, "url"),
        ({"url": "not a url", "events": ["charge.paid"]}, 400, "url"),
        ({"url": URL, "events": ["charge.paid"], "description": "a\x1bb"}, 400, "description"),
        ({"url": URL, "events": ["charge.paid"], "extra": 1}, 400, "extra"),
        ({"url": "http://127.0.0.1:9/h", "events": ["charge.paid"]}, 422, "url"),
        ({"url": "https://169.254.169.254/latest", "events": ["charge.paid"]}, 422, "url"),
        ({"url": "https://10.0.0.5/h", "events": ["charge.paid"]}, 422, "url"),
    ],
)
async def test_invalid_endpoints_are_refused_with_json_naming_the_field(
    client: Client, auth: dict[str, str], body: dict[str, Any], status: int, field: str
) -> None:
    response = await client.post(PATH, json=body, headers=auth)
    data = await response.get_json()
    assert response.status_code == status, data
    assert data["error"] and data["detail"] and field in str(data.get("fields")), data
    assert await WebhookEndpoint.all().count() == 0


async def test_another_merchants_endpoint_is_404_everywhere(
    client: Client, auth: dict[str, str], config: Config
) -> None:
    created = await create(client, auth)
    other = bearer(await make_merchant("outra@example.com"), config)
    path = f"{PATH}/{created['id']}"
    assert (await client.get(path, headers=other)).status_code == 404
    assert (await client.patch(path, json={"enabled": False}, headers=other)).status_code == 404
    assert (await client.delete(path, headers=other)).status_code == 404
    for action in ("rotate-secret", "test"):
        response = await client.post(f"{path}/{action}", json={}, headers=other)
        assert response.status_code == 404, action
    assert (await client.get(f"{path}/deliveries", headers=other)).status_code == 404
    delivery = await (await client.post(f"{path}/test", headers=auth)).get_json()
    resend = f"{path}/deliveries/{delivery['id']}/resend"
    body = await (await client.post(resend, headers=other)).get_json()
    assert body["error"] == "not_found"
    assert (await (await client.get(PATH, headers=other)).get_json())["items"] == []
    assert (await client.get(path, headers=auth)).status_code == 200


class TestPrivateUrlsAllowed:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return {"allow_private_urls": True}

    async def test_a_private_url_is_accepted_when_allowed(
        self, client: Client, auth: dict[str, str]
    ) -> None:
        created = await create(client, auth, url="http://127.0.0.1:9/hook")
        assert created["url"] == "http://127.0.0.1:9/hook"


class TestProduction:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return {**PRODUCTION}

    async def test_production_wants_https_and_a_public_host(
        self, client: Client, auth: dict[str, str]
    ) -> None:
        for url, why in [
            ("http://8.8.8.8/h", "https"),
            ("https://127.0.0.1/h", "loopback"),
            ("https://[::ffff:169.254.169.254]/h", "metadata"),
        ]:
            response = await client.post(
                PATH, json={"url": url, "events": ["charge.paid"]}, headers=auth
            )
            body = await response.get_json()
            assert response.status_code == 422, body
            assert body["error"] == "url_refused" and why in body["fields"]["url"], body
        assert (await create(client, auth))["url"] == URL


async def test_rotation_signs_with_both_secrets_during_the_grace_period(
    client: Client, auth: dict[str, str], config: Config
) -> None:
    created = await create(client, auth)
    path = f"{PATH}/{created['id']}/rotate-secret"
    response = await client.post(path, json={"grace_seconds": 3600}, headers=auth)
    rotated = await response.get_json()
    assert response.status_code == 200, rotated
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    row = await WebhookEndpoint.get(id=created["id"])
    now = utcnow()
    key = config.encryption_key
    assert signing_secrets(row, key=key, now=now) == [rotated["secret"], created["secret"]]
    later = now + timedelta(seconds=3601)
    assert signing_secrets(row, key=key, now=later) == [rotated["secret"]]
    again = await (await client.post(path, json={"grace_seconds": 0}, headers=auth)).get_json()
    row = await WebhookEndpoint.get(id=created["id"])
    assert signing_secrets(row, key=key, now=now) == [again["secret"]]


async def test_rotation_grace_defaults_to_a_day_and_stops_at_seven(
    client: Client, auth: dict[str, str]
) -> None:
    created = await create(client, auth)
    path = f"{PATH}/{created['id']}/rotate-secret"
    body = await (await client.post(path, json={}, headers=auth)).get_json()
    row = await WebhookEndpoint.get(id=created["id"])
    assert row.previous_secret_expires_at is not None
    left = row.previous_secret_expires_at - utcnow()
    assert timedelta(hours=23, minutes=59) < left <= timedelta(hours=24), body
    response = await client.post(path, json={"grace_seconds": 7 * 86400 + 1}, headers=auth)
    assert response.status_code == 400
    assert "grace_seconds" in str((await response.get_json())["fields"])


async def test_a_test_event_and_a_resend_are_manual_deliveries_of_the_right_event(
    client: Client, auth: dict[str, str], merchant: Merchant
) -> None:
    created = await create(client, auth, events=["charge.paid"])
    path = f"{PATH}/{created['id']}"
    response = await client.post(f"{path}/test", headers=auth)
    test = await response.get_json()
    assert response.status_code == 201, test
    assert test["event_type"] == TEST_EVENT and test["manual"]
    event = await WebhookEvent.get(id=test["event_id"])
    assert event.merchant_id == merchant.id and event.type == TEST_EVENT
    response = await client.post(f"{path}/deliveries/{test['id']}/resend", headers=auth)
    resent = await response.get_json()
    assert response.status_code == 201, resent
    assert resent["id"] != test["id"] and resent["event_id"] == test["event_id"]
    assert resent["manual"] and resent["event_type"] == TEST_EVENT
    assert await WebhookEvent.all().count() == 1  # the same event: the same webhook-id
    listed = await (await client.get(f"{path}/deliveries", headers=auth)).get_json()
    assert [d["id"] for d in listed["items"]] == [resent["id"], test["id"]]
    missing = await client.post(f"{path}/deliveries/{10**15}/resend", headers=auth)
    assert missing.status_code == 404


async def test_a_disabled_endpoint_takes_no_test_event(
    client: Client, auth: dict[str, str]
) -> None:
    created = await create(client, auth)
    path = f"{PATH}/{created['id']}"
    await client.patch(path, json={"enabled": False}, headers=auth)
    response = await client.post(f"{path}/test", headers=auth)
    assert response.status_code == 409 and (await response.get_json())["error"] == "conflict"
    assert await WebhookDelivery.all().count() == 0


async def test_deliveries_page_newest_first_with_attempts(
    client: Client, auth: dict[str, str]
) -> None:
    from pixweb.models import WebhookAttempt

    created = await create(client, auth)
    path = f"{PATH}/{created['id']}"
    ids = [
        (await (await client.post(f"{path}/test", headers=auth)).get_json())["id"] for _ in range(3)
    ]
    await WebhookAttempt.create(
        delivery_id=ids[0],
        number=1,
        started_at=utcnow(),
        duration_ms=12,
        status_code=500,
        response_body="erro",
        error=None,
    )
    first = await (await client.get(f"{path}/deliveries?limit=2", headers=auth)).get_json()
    assert [d["id"] for d in first["items"]] == ids[:0:-1] and first["next_cursor"]
    cursor = first["next_cursor"]
    rest = await (
        await client.get(f"{path}/deliveries?limit=2&cursor={cursor}", headers=auth)
    ).get_json()
    assert [d["id"] for d in rest["items"]] == ids[:1] and rest["next_cursor"] is None
    attempt = rest["items"][0]["attempt_log"][0]
    assert attempt["status_code"] == 500 and attempt["response_body"] == "erro"
    assert attempt["duration_ms"] == 12
    bad = await client.get(f"{path}/deliveries?cursor=nonsense", headers=auth)
    assert bad.status_code == 400 and (await bad.get_json())["fields"]["cursor"]


async def test_an_id_beyond_the_column_is_404_for_every_method(
    client: Client, auth: dict[str, str]
) -> None:
    # Werkzeug checks a rule's methods before its converter: an id the converter refuses on
    # a path that several methods serve was a 405 naming them, unless the regex refuses it.
    for method in ("GET", "PATCH", "DELETE"):
        response = await client.open(
            f"{PATH}/{2**31}", method=method, json={"enabled": True}, headers=auth
        )
        assert response.status_code == 404, method
    response = await client.post(f"{PATH}/1/deliveries/{2**63}/resend", headers=auth)
    assert response.status_code == 404
