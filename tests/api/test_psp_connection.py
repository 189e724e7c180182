"""PUT/GET/DELETE /merchants/me/psp and the webhook token's rotation, against the local
fake PSP (tests/psp_fake.py): a hypercorn server over TLS requiring a client certificate."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from tortoise.connection import get_connection

from pixweb.config import Config
from pixweb.deps import PSP_CLIENTS_KEY
from pixweb.models import Merchant, PspConnection
from pixweb.netguard import UrlPolicy
from pixweb.psp.transport import RetryPolicy
from pixweb.services.psp_clients import PspClients
from tests.conftest import bearer, make_merchant
from tests.psp_fake import CLIENT_ID, CLIENT_SECRET, FakePsp, Pki, pem_chain, pem_key, problem
from tests.support import PRODUCTION

PUBLIC = "https://pixweb.example"
CHAVE = "loja@example.com"  # the merchant fixture's Pix key
WEBHOOK = f"/webhook/{CHAVE}"
PATH = "/merchants/me/psp"


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"allow_private_urls": True, "public_url": PUBLIC}


@pytest.fixture
async def clients(app: Quart, config: Config, psp: FakePsp) -> AsyncIterator[PspClients]:
    """The app's PSP clients with short timeouts and retries, closed before the fake PSP."""
    fast = PspClients(
        encryption_key=config.encryption_key,
        url_policy=UrlPolicy(require_https=config.production, allow_private=True),
        timeout=2.0,
        retry=RetryPolicy(attempts=2, backoff=0.01),
    )
    app.extensions[PSP_CLIENTS_KEY] = fast
    yield fast
    await fast.aclose()


def credentials(psp: FakePsp, pki: Pki, **overrides: Any) -> dict[str, Any]:
    return {
        "base_url": psp.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "certificate_pem": pem_chain(pki.client),
        "private_key_pem": pem_key(pki.client),
        "server_ca_pem": pki.ca.cert_pem.bytes().decode(),
        **overrides,
    }


async def connect(
    client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki, **overrides: Any
) -> Any:
    return await client.put(PATH, json=credentials(psp, pki, **overrides), headers=auth)


async def connected(client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki) -> Any:
    response = await connect(client, auth, psp, pki)
    assert response.status_code == 200, await response.get_json()
    return await response.get_json()


async def assert_refused(response: Any, status: int, step: str) -> dict[str, Any]:
    body = await response.get_json()
    assert response.status_code == status, body
    assert body["step"] == step and body["detail"].startswith(f"{step}: "), body
    return dict(body)


async def assert_nothing_stored(client: Client, auth: dict[str, str]) -> None:
    assert await PspConnection.all().count() == 0
    assert (await client.get(PATH, headers=auth)).status_code == 404


def secrets_of(pki: Pki) -> list[str]:
    """The secret strings, and every line of the private key's body."""
    key_lines = [line for line in pem_key(pki.client).splitlines() if "-----" not in line]
    return [CLIENT_SECRET, pem_key(pki.client), *key_lines]


@pytest.mark.usefixtures("clients")
class TestConnect:
    async def test_connect_proves_the_credentials_and_registers_the_webhook(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        body = await connected(client, auth, psp, pki)

        assert body["base_url"] == psp.url
        assert body["token_url"] == f"{psp.url}/oauth/token"
        assert body["client_id"] == CLIENT_ID
        assert body["chave"] == CHAVE
        assert "O=Loja Exemplo" in body["certificate"]["subject"]
        assert body["certificate"]["expiring_soon"] is False
        assert body["certificate"]["expired"] is False
        assert body["certificate"]["not_after"].startswith("3000-01-01")
        assert body["last_reconciliation_at"] is None and body["problem"] is None
        token = body["webhook_url"].removeprefix(f"{PUBLIC}/webhooks/pix/")
        assert len(token) >= 43 and "/" not in token

        # The PSP saw: a token, one read call, then the webhook's registration.
        calls = [f"{s.method} {s.path}" for s in psp.requests]
        assert calls == ["POST /oauth/token", f"GET {WEBHOOK}", f"PUT {WEBHOOK}"]
        (put,) = psp.seen(f"PUT {WEBHOOK}")
        assert json.loads(put.body) == {"webhookUrl": f"{PUBLIC}/webhooks/pix/{token}"}
        assert psp.webhooks == {CHAVE: body["webhook_url"]}

    async def test_get_shows_the_connection_and_never_a_secret(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        connect_text = json.dumps(await connected(client, auth, psp, pki))
        response = await client.get(PATH, headers=auth)
        assert response.status_code == 200
        text = await response.get_data(as_text=True)
        assert json.loads(text)["client_id"] == CLIENT_ID
        for secret in secrets_of(pki):
            assert secret not in text and secret not in connect_text

    async def test_secrets_are_encrypted_in_the_database(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        body = await connected(client, auth, psp, pki)
        token = body["webhook_url"].rsplit("/", 1)[1]
        rows = await get_connection("default").execute_query_dict('SELECT * FROM "psp_connection"')
        (row,) = rows
        raw = json.dumps(row, default=str)
        for secret in [*secrets_of(pki), token, "PRIVATE KEY"]:
            assert secret not in raw
        for column in ("client_secret", "private_key_pem", "webhook_url"):
            assert row[column].startswith("v1.")
        assert row["webhook_token_hash"] == hashlib.sha256(token.encode()).hexdigest()
        assert row["client_id"] == CLIENT_ID  # not a secret: shown to the merchant

    async def test_the_token_url_can_be_given(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        response = await connect(
            client, auth, psp, pki, base_url=psp.url + "/", token_url=f"{psp.url}/oauth/token"
        )
        assert response.status_code == 200
        assert (await response.get_json())["base_url"] == psp.url

    async def test_a_foreign_client_certificate_fails_at_tls(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        response = await connect(
            client,
            auth,
            psp,
            pki,
            certificate_pem=pem_chain(pki.foreign_client),
            private_key_pem=pem_key(pki.foreign_client),
        )
        body = await assert_refused(response, 422, "tls")
        assert body["error"] == "psp_tls_error"
        assert "refused the client certificate" in body["detail"]
        await assert_nothing_stored(client, auth)

    async def test_an_untrusted_psp_certificate_fails_at_tls(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        response = await connect(client, auth, psp, pki, server_ca_pem=None)
        body = await assert_refused(response, 422, "tls")
        assert "server_ca_pem" in body["detail"]
        await assert_nothing_stored(client, auth)

    async def test_a_wrong_secret_fails_at_token(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        response = await connect(client, auth, psp, pki, client_secret="wrong")
        body = await assert_refused(response, 422, "token")
        assert body["error"] == "psp_auth_error" and body["psp_status"] == 401
        assert "invalid_client" in body["detail"]
        assert psp.seen(f"PUT {WEBHOOK}") == []
        await assert_nothing_stored(client, auth)

    async def test_a_missing_token_endpoint_says_to_set_token_url(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        response = await connect(client, auth, psp, pki, token_url=f"{psp.url}/oauth/v2/token")
        body = await assert_refused(response, 422, "token")
        assert "set token_url" in body["detail"]

    async def test_a_denied_read_fails_at_permission(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        psp.script(f"GET {WEBHOOK}", (403, problem(403, "AcessoNegado")))
        response = await connect(client, auth, psp, pki)
        body = await assert_refused(response, 422, "permission")
        assert "webhook.read" in body["detail"] and body["psp_status"] == 403
        assert psp.seen(f"PUT {WEBHOOK}") == []
        await assert_nothing_stored(client, auth)

    async def test_a_token_without_the_scopes_fails_at_permission(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        token = {"access_token": "t", "token_type": "Bearer", "scope": "cob.read pix.read"}
        psp.script("POST /oauth/token", (200, token))
        response = await connect(client, auth, psp, pki)
        body = await assert_refused(response, 422, "permission")
        assert "lacks the scopes cob.write webhook.write webhook.read" in body["detail"]
        await assert_nothing_stored(client, auth)

    async def test_a_refused_webhook_fails_at_webhook_and_stores_nothing(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        refusal = problem(
            400,
            "WebhookOperacaoInvalida",
            detail="A URL do webhook não é válida.",
            violacoes=[{"razao": "deve ser https", "propriedade": "webhookUrl"}],
        )
        psp.script(f"PUT {WEBHOOK}", (400, refusal))
        response = await connect(client, auth, psp, pki)
        body = await assert_refused(response, 422, "webhook")
        assert body["error"] == "psp_rejected"
        assert "webhookUrl: deve ser https" in body["detail"]
        assert body["fields"] == {"webhookUrl": "deve ser https"}
        await assert_nothing_stored(client, auth)

    async def test_a_psp_that_keeps_failing_is_a_503_naming_the_step(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        psp.script(f"PUT {WEBHOOK}", (503, problem(503, "ServicoIndisponivel")), (503, {}))
        response = await connect(client, auth, psp, pki)
        body = await assert_refused(response, 503, "webhook")
        assert body["error"] == "psp_unavailable"
        await assert_nothing_stored(client, auth)

    async def test_an_unreachable_psp_is_a_503(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        response = await connect(client, auth, psp, pki, base_url=f"https://127.0.0.1:{port}")
        await assert_refused(response, 503, "token")
        await assert_nothing_stored(client, auth)

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("certificate_pem", "not a pem", "is not a PEM certificate"),
            ("private_key_pem", "not a pem", "is not a PEM private key"),
            ("server_ca_pem", "not a pem", "is not a PEM certificate"),
            ("base_url", "psp.example", "must be an https URL"),
        ],
    )
    async def test_bad_material_is_a_400_naming_the_field(
        self,
        client: Client,
        auth: dict[str, str],
        psp: FakePsp,
        pki: Pki,
        field: str,
        value: str,
        message: str,
    ) -> None:
        response = await connect(client, auth, psp, pki, **{field: value})
        body = await response.get_json()
        assert response.status_code == 400, body
        assert message in body["fields"][field]
        assert psp.requests == []
        await assert_nothing_stored(client, auth)

    async def test_a_key_of_another_certificate_is_a_400(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        response = await connect(client, auth, psp, pki, private_key_pem=pem_key(pki.server))
        assert response.status_code == 400
        assert "does not match" in (await response.get_json())["fields"]["private_key_pem"]

    async def test_an_expired_certificate_is_a_422_before_calling_the_psp(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        from datetime import UTC, datetime

        old = pki.ca.issue_cert(
            "merchant.example.com",
            not_before=datetime(2020, 1, 1, tzinfo=UTC),
            not_after=datetime(2021, 1, 1, tzinfo=UTC),
        )
        response = await connect(
            client, auth, psp, pki, certificate_pem=pem_chain(old), private_key_pem=pem_key(old)
        )
        body = await response.get_json()
        assert response.status_code == 422
        assert body["fields"]["certificate_pem"].startswith("expired on 2021-01-01")
        assert psp.requests == []

    async def test_reconnecting_to_the_same_psp_keeps_the_webhook_token(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        first = await connected(client, auth, psp, pki)
        second = await connected(client, auth, psp, pki)
        assert second["webhook_url"] == first["webhook_url"]
        assert len(psp.seen(f"PUT {WEBHOOK}")) == 2
        assert await PspConnection.all().count() == 1

    async def test_the_connection_is_the_merchants_own(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki, config: Config
    ) -> None:
        await connected(client, auth, psp, pki)
        other = bearer(await make_merchant("outra@example.com"), config)
        assert (await client.get(PATH, headers=other)).status_code == 404
        assert (await client.delete(PATH, headers=other)).status_code == 404
        assert (await client.get(PATH)).status_code == 401
        response = await client.put(PATH, json=credentials(psp, pki))
        assert response.status_code == 401


@pytest.mark.usefixtures("clients")
class TestDisconnectAndRotate:
    async def test_delete_removes_the_webhook_at_the_psp_and_the_connection(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        await connected(client, auth, psp, pki)
        response = await client.delete(PATH, headers=auth)
        body = await response.get_json()
        assert response.status_code == 200, body
        assert body["disconnected"] is True and body["webhook_removed"] is True
        assert psp.webhooks == {} and len(psp.seen(f"DELETE {WEBHOOK}")) == 1
        await assert_nothing_stored(client, auth)
        assert (await client.delete(PATH, headers=auth)).status_code == 404

    async def test_delete_disconnects_even_when_the_psp_fails(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        await connected(client, auth, psp, pki)
        down = problem(503, "ServicoIndisponivel")
        psp.script(f"DELETE {WEBHOOK}", (503, down), (503, down))
        response = await client.delete(PATH, headers=auth)
        body = await response.get_json()
        assert response.status_code == 200, body
        assert body["disconnected"] is True and body["webhook_removed"] is False
        assert "could not be reached" in body["detail"] and "PSP's portal" in body["detail"]
        await assert_nothing_stored(client, auth)

    async def test_delete_disconnects_even_when_the_psp_is_gone(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        await connected(client, auth, psp, pki)
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        await PspConnection.all().update(
            base_url=f"https://127.0.0.1:{port}", token_url=f"https://127.0.0.1:{port}/t"
        )
        response = await client.delete(PATH, headers=auth)
        body = await response.get_json()
        assert response.status_code == 200 and body["webhook_removed"] is False, body
        await assert_nothing_stored(client, auth)

    async def test_rotating_registers_a_new_url_and_retires_the_old_token(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        before = await connected(client, auth, psp, pki)
        response = await client.post(f"{PATH}/webhook-token", headers=auth)
        after = await response.get_json()
        assert response.status_code == 200, after
        assert after["webhook_url"] != before["webhook_url"]
        assert after["webhook_url"].startswith(f"{PUBLIC}/webhooks/pix/")
        assert psp.webhooks == {CHAVE: after["webhook_url"]}
        assert (await client.get(PATH, headers=auth)).status_code == 200
        row = await PspConnection.get()
        new_token = after["webhook_url"].rsplit("/", 1)[1]
        assert row.webhook_token_hash == hashlib.sha256(new_token.encode()).hexdigest()

    async def test_a_refused_rotation_keeps_the_old_url(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        before = await connected(client, auth, psp, pki)
        psp.script(f"PUT {WEBHOOK}", (400, problem(400, "WebhookOperacaoInvalida")))
        response = await client.post(f"{PATH}/webhook-token", headers=auth)
        await assert_refused(response, 422, "webhook")
        now = await (await client.get(PATH, headers=auth)).get_json()
        assert now["webhook_url"] == before["webhook_url"]

    async def test_rotating_without_a_connection_is_a_404(
        self, client: Client, auth: dict[str, str]
    ) -> None:
        response = await client.post(f"{PATH}/webhook-token", headers=auth)
        assert response.status_code == 404
        assert "PUT /merchants/me/psp" in (await response.get_json())["detail"]


class TestAnotherEncryptionKey:
    async def test_stored_secrets_under_another_key_are_named_not_a_crash(
        self,
        app: Quart,
        client: Client,
        auth: dict[str, str],
        clients: PspClients,
        psp: FakePsp,
        pki: Pki,
    ) -> None:
        await connected(client, auth, psp, pki)
        other = PspClients(
            encryption_key="nrhIV2oZ7Uis1ezY7svkHV1UBdELtMpvBjjioUPb-28=",
            url_policy=clients.url_policy,
            **clients.options,
        )
        app.extensions[PSP_CLIENTS_KEY] = other
        try:
            response = await client.get(PATH, headers=auth)
            body = await response.get_json()
            assert response.status_code == 200, body
            assert body["webhook_url"] is None
            assert "another PIXWEB_ENCRYPTION_KEY" in body["problem"]
            assert "connect the PSP again" in body["problem"]

            rotated = await client.post(f"{PATH}/webhook-token", headers=auth)
            error = await rotated.get_json()
            assert rotated.status_code == 500 and error["error"] == "encryption_error"
            assert "client_secret cannot be decrypted" in error["detail"]

            # The merchant can still leave, and connect again under the current key.
            gone = await (await client.delete(PATH, headers=auth)).get_json()
            assert gone["disconnected"] is True and gone["webhook_removed"] is False
            again = await connected(client, auth, psp, pki)
            assert again["problem"] is None
        finally:
            await other.aclose()


class TestProduction:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return {**PRODUCTION}

    async def test_production_refuses_http_and_private_addresses(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki
    ) -> None:
        for base_url, why in [
            ("http://psp.example.com/v2", "must be https"),
            (psp.url, "127.0.0.1: loopback"),
            ("https://169.254.169.254/v2", "cloud metadata"),
            ("https://[::ffff:10.0.0.1]/v2", "private, inside an IPv6 address"),
        ]:
            response = await connect(client, auth, psp, pki, base_url=base_url)
            body = await response.get_json()
            assert response.status_code == 422, body
            assert body["error"] == "url_refused" and why in body["fields"]["base_url"]
        response = await connect(
            client, auth, psp, pki, base_url="https://8.8.8.8/v2", token_url="https://10.1.1.1/t"
        )
        assert "private" in (await response.get_json())["fields"]["token_url"]
        assert psp.requests == []
        await assert_nothing_stored(client, auth)


class TestPrivateAllowedInProduction:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return {**PRODUCTION, "allow_private_urls": True}

    @pytest.mark.usefixtures("clients")
    async def test_allowing_private_urls_lets_an_on_premises_psp_connect(
        self, client: Client, auth: dict[str, str], psp: FakePsp, pki: Pki, merchant: Merchant
    ) -> None:
        body = await connected(client, auth, psp, pki)
        assert body["webhook_url"].startswith("https://pix.example.com/webhooks/pix/")
        response = await connect(client, auth, psp, pki, base_url="http://127.0.0.1:1/")
        assert (await response.get_json())["error"] == "url_refused"  # https all the same
