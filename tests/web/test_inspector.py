"""The BR Code inspector page and its HTMX report."""

from __future__ import annotations

from urllib.parse import quote

from quart.typing import TestClientProtocol as Client

VALID = (
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000"
    "5204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D"
)
NON_CANONICAL = (
    "00020126580014br.gov.bcb.pix01365a5ea8c2-cbb5-4c25-a7be-2a778871fc5f52040000530398654031985"
    "802BR5911Arrumadinho6008Brasilia62290525e433v1530u155f31mSushiPro63048381"
)


async def report(client: Client, code: str) -> str:
    response = await client.get(f"/tools/brcode/report?code={quote(code)}")
    assert response.status_code == 200
    return (await response.get_data()).decode()


async def test_page_has_the_form_wired_to_the_report(client: Client) -> None:
    html = (await (await client.get("/tools/brcode")).get_data()).decode()
    assert 'hx-get="/tools/brcode/report"' in html and 'id="brcode-report"' in html


async def test_a_valid_code_shows_its_fields_in_portuguese(client: Client) -> None:
    html = await report(client, VALID)
    assert "Código válido" in html
    assert "Nome do recebedor" in html and "Fulano de Tal" in html
    assert "Chave Pix" in html and "123e4567-e12b-12d1-a456-426655440000" in html


async def test_a_corrupted_crc_is_an_error_in_portuguese(client: Client) -> None:
    html = await report(client, VALID[:-1] + "E")
    assert "Código inválido" in html
    assert 'data-code="crc_mismatch"' in html and "O CRC não confere" in html


async def test_an_amount_without_decimals_is_a_warning(client: Client) -> None:
    html = await report(client, NON_CANONICAL)
    assert "Código válido, com avisos" in html
    assert 'data-code="amount_not_canonical"' in html and "R$ 1,98" in html


async def test_the_page_reports_a_code_given_in_the_query(client: Client) -> None:
    html = (await (await client.get(f"/tools/brcode?code={quote(VALID[:40])}")).get_data()).decode()
    assert "Código inválido" in html


async def test_empty_and_oversized_input(client: Client) -> None:
    assert "Código" not in await report(client, "   ")
    assert "longo demais" in await report(client, "0" * 5000)
