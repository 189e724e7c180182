"""The payer's receipt: /payments/pix/<id>/comprovante once the charge is paid."""

from __future__ import annotations

from datetime import UTC, datetime

from pixweb.models import Payment, PaymentStatus
from tests.api.test_payments import create

E2E = "E12345678202405011200abcdefghijk"


async def test_receipt_only_once_paid(client, auth) -> None:
    charge = await create(client, auth, value="1234.56", description="Pão de queijo")
    path = f"/payments/pix/{charge['id']}/comprovante"
    assert (await client.get(path)).status_code == 404
    page = await (await client.get(f"/payments/pix/{charge['id']}")).get_data(as_text=True)
    assert "Comprovante" not in page
    paid_at = datetime(2024, 5, 1, 15, 30, tzinfo=UTC)
    await Payment.filter(id=charge["id"]).update(
        status=PaymentStatus.PAID, paid_at=paid_at, end_to_end_id=E2E
    )
    page = await (await client.get(f"/payments/pix/{charge['id']}")).get_data(as_text=True)
    assert f'href="{path}"' in page
    response = await client.get(path)
    assert response.status_code == 200
    body = await response.get_data(as_text=True)
    for text in ("Padaria São João", "1.234,56", "01/05/2024 às 12:30", E2E, "Pão de queijo"):
        assert text in body
    assert charge["bank_payment_id"] in body
    assert "data-print" in body and "Imprimir" in body and "onclick" not in body
    await Payment.filter(id=charge["id"]).update(status=PaymentStatus.CANCELLED)
    assert (await client.get(path)).status_code == 404
