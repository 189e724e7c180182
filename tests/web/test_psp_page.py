"""The "Conectar PSP" page: PEM or .p12 uploads, the step that failed in Portuguese, the
certificate's expiry warning, disconnecting; against the fake mTLS PSP."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import load_pem_x509_certificates
from quart import Quart
from quart.datastructures import FileStorage
from quart.typing import TestClientProtocol as Client

from pixweb.config import Config
from pixweb.deps import PSP_CLIENTS_KEY
from pixweb.models import Merchant, PspConnection
from pixweb.netguard import UrlPolicy
from pixweb.psp.transport import RetryPolicy
from pixweb.services.psp_clients import PspClients
from tests.psp_fake import CLIENT_ID, CLIENT_SECRET, FakePsp, Pki, pem_chain, pem_key
from tests.web.test_auth import login

PAGE = "/dashboard/psp"


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"allow_private_urls": True, "public_url": "https://pixweb.example"}


@pytest.fixture
async def clients(app: Quart, config: Config, psp: FakePsp) -> AsyncIterator[PspClients]:
    fast = PspClients(
        encryption_key=config.encryption_key,
        url_policy=UrlPolicy(require_https=False, allow_private=True),
        timeout=2.0,
        retry=RetryPolicy(attempts=2, backoff=0.01),
    )
    app.extensions[PSP_CLIENTS_KEY] = fast
    yield fast
    await fast.aclose()


def upload(text: str | bytes, name: str) -> FileStorage:
    data = text.encode() if isinstance(text, str) else text
    return FileStorage(io.BytesIO(data), filename=name)


async def post_connect(
    client: Client, csrf: str, psp: FakePsp, pki: Pki, files: dict[str, FileStorage], **form: str
) -> tuple[int, str]:
    fields = {
        "csrf_token": csrf,
        "base_url": psp.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        **form,
    }
    files = {"server_ca_file": upload(pki.ca.cert_pem.bytes(), "ca.pem"), **files}
    response = await client.post(PAGE, form=fields, files=files)
    return response.status_code, (await response.get_data()).decode()


def pem_files(pki: Pki) -> dict[str, FileStorage]:
    return {
        "certificate_file": upload(pem_chain(pki.client), "cert.pem"),
        "private_key_file": upload(pem_key(pki.client), "key.pem"),
    }


@pytest.mark.usefixtures("clients", "merchant")
class TestPspPage:
    async def test_the_page_needs_a_session(self, client: Client) -> None:
        response = await client.get(PAGE)
        assert response.status_code == 302 and response.location.endswith("/login")

    async def test_connecting_with_pem_files_shows_the_connection(
        self, client: Client, merchant: Merchant, psp: FakePsp, pki: Pki
    ) -> None:
        csrf = await login(client)
        page = (await (await client.get(PAGE)).get_data()).decode()
        assert "Nenhum PSP conectado" in page

        status, page = await post_connect(client, csrf, psp, pki, pem_files(pki))
        assert status == 200, page
        assert "PSP conectado e webhook registrado." in page
        assert "O=Loja Exemplo" in page and CLIENT_ID in page
        assert "https://pixweb.example/webhooks/pix/" in page
        assert CLIENT_SECRET not in page and "PRIVATE KEY" not in page
        assert psp.webhooks[merchant.pix_key].startswith("https://pixweb.example/webhooks/pix/")
        assert await PspConnection.all().count() == 1

    async def test_a_bank_p12_with_its_password_connects(
        self, client: Client, psp: FakePsp, pki: Pki
    ) -> None:
        csrf = await login(client)
        key = serialization.load_pem_private_key(pem_key(pki.client).encode(), None)
        leaf, *chain = load_pem_x509_certificates(pem_chain(pki.client).encode())
        p12 = pkcs12.serialize_key_and_certificates(
            b"loja",
            key,  # type: ignore[arg-type]
            leaf,
            chain,
            serialization.BestAvailableEncryption(b"senha do banco"),
        )
        files = {"p12_file": upload(p12, "loja.p12")}
        status, page = await post_connect(
            client, csrf, psp, pki, files, p12_password="senha do banco"
        )
        assert status == 200, page
        assert "PSP conectado" in page

        files = {"p12_file": upload(p12, "loja.p12")}
        status, page = await post_connect(client, csrf, psp, pki, files, p12_password="errada")
        assert status == 422
        assert "Não foi possível ler o .p12: confira o arquivo e a senha." in page

    async def test_a_wrong_secret_names_the_step_in_portuguese_and_stores_nothing(
        self, client: Client, psp: FakePsp, pki: Pki
    ) -> None:
        csrf = await login(client)
        status, page = await post_connect(
            client, csrf, psp, pki, pem_files(pki), client_secret="errado"
        )
        assert status == 422
        assert "Falha na autenticação: o PSP recusou o client id ou o client secret" in page
        assert "Detalhe técnico: token:" in page
        assert f'value="{psp.url}"' in page  # what was typed stays, the secret does not
        assert 'value="errado"' not in page
        assert await PspConnection.all().count() == 0

    async def test_a_foreign_certificate_fails_at_tls(
        self, client: Client, psp: FakePsp, pki: Pki
    ) -> None:
        csrf = await login(client)
        files = {
            "certificate_file": upload(pem_chain(pki.foreign_client), "cert.pem"),
            "private_key_file": upload(pem_key(pki.foreign_client), "key.pem"),
        }
        status, page = await post_connect(client, csrf, psp, pki, files)
        assert status == 422 and "Falha na conexão segura (TLS)" in page

    async def test_missing_or_bad_files_are_named(
        self, client: Client, psp: FakePsp, pki: Pki
    ) -> None:
        csrf = await login(client)
        status, page = await post_connect(client, csrf, psp, pki, {})
        assert status == 422 and "Envie o certificado e a chave (PEM) ou o arquivo .p12." in page
        files = {**pem_files(pki), "private_key_file": upload(pem_key(pki.server), "k.pem")}
        status, page = await post_connect(client, csrf, psp, pki, files)
        assert status == 422
        assert "Envie a chave privada em PEM, sem senha, do mesmo certificado." in page
        assert psp.requests == []

    async def test_an_expiring_certificate_is_warned_30_days_ahead(
        self, client: Client, psp: FakePsp, pki: Pki
    ) -> None:
        csrf = await login(client)
        soon = pki.ca.issue_cert(
            "merchant.example.com", not_after=datetime.now(UTC) + timedelta(days=20)
        )
        files = {
            "certificate_file": upload(pem_chain(soon), "cert.pem"),
            "private_key_file": upload(pem_key(soon), "key.pem"),
        }
        status, page = await post_connect(client, csrf, psp, pki, files)
        assert status == 200, page
        assert "O certificado vence em" in page and "peça um novo ao PSP" in page

    async def test_rotating_and_disconnecting(
        self, client: Client, merchant: Merchant, psp: FakePsp, pki: Pki
    ) -> None:
        csrf = await login(client)
        await post_connect(client, csrf, psp, pki, pem_files(pki))
        before = psp.webhooks[merchant.pix_key]
        response = await client.post(f"{PAGE}/webhook-token", form={"csrf_token": csrf})
        assert response.status_code == 200
        assert "Nova URL do webhook registrada" in (await response.get_data()).decode()
        assert psp.webhooks[merchant.pix_key] != before

        response = await client.post(f"{PAGE}/disconnect", form={"csrf_token": csrf})
        page = (await response.get_data()).decode()
        assert response.status_code == 200
        assert "PSP desconectado e webhook removido no PSP." in page
        assert "Nenhum PSP conectado" in page and psp.webhooks == {}

    async def test_posts_need_the_csrf_token(self, client: Client, psp: FakePsp, pki: Pki) -> None:
        await login(client)
        status, _ = await post_connect(client, "wrong", psp, pki, pem_files(pki))
        assert status == 403
        response = await client.post(f"{PAGE}/disconnect", form={})
        assert response.status_code == 403
