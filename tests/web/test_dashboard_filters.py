"""The dashboard's charges section: its HTMX filter form, "Carregar mais" and the totals."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from quart.typing import TestClientProtocol as Client

from pixweb.models import Merchant, PaymentStatus
from tests.api.test_payments_filters import DAY1, charge
from tests.conftest import make_merchant
from tests.web.test_auth import login

HTMX = {"HX-Request": "true", "HX-Target": "charges-results"}


async def results(client: Client, query: str, target: str = "charges-results") -> str:
    response = await client.get(f"/dashboard?{query}", headers={**HTMX, "HX-Target": target})
    assert response.status_code == 200
    return (await response.get_data()).decode()


def rows(html: str) -> set[str]:
    return set(re.findall(r'id="charge-([0-9a-f-]{36})"', html))


async def seed(merchant: Merchant) -> dict[str, Any]:
    return {
        "pao": await charge(merchant, 1050, "Pão de queijo", created_at=DAY1),
        "cafe": await charge(merchant, 700, "Café 100%", created_at=DAY1 + timedelta(days=1)),
        "bolo": await charge(
            merchant,
            123456,
            "Bolo",
            created_at=DAY1 + timedelta(days=2),
            status=PaymentStatus.PAID,
        ),
    }


async def test_filter_form_answers_matching_rows_and_totals(client, merchant) -> None:
    made = await seed(merchant)
    await charge(await make_merchant("outra@example.com"), 500, "Pão de queijo")
    await login(client)

    html = await results(client, "status=paid")
    assert rows(html) == {str(made["bolo"].id)}
    assert "1 cobrança · R$\xa01.234,56" in html
    assert "<html" not in html and 'id="charges-filtered"' in html

    html = await results(client, "q=QUEIJO")
    assert rows(html) == {str(made["pao"].id)}
    assert "1 cobrança · R$\xa010,50" in html

    html = await results(client, "q=%25")  # a literal percent sign
    assert rows(html) == {str(made["cafe"].id)}

    # Dates are days in Brasília: 2026-03-02 covers the café only.
    html = await results(client, "de=2026-03-02&ate=2026-03-02")
    assert rows(html) == {str(made["cafe"].id)}
    assert "1 cobrança · R$\xa07,00" in html

    html = await results(client, "status=pending&q=Bolo")
    assert rows(html) == set()
    assert "0 cobranças · R$\xa00,00" in html and "Nenhuma cobrança com estes filtros." in html

    html = await results(client, "")
    assert rows(html) == {str(made[name].id) for name in made}
    assert "3 cobranças · R$\xa01.252,06" in html and 'id="charges-list"' in html


async def test_load_more_pages_through_the_filter(client, merchant) -> None:
    made = {await charge(merchant, 100 + n, f"item {n}", created_at=DAY1) for n in range(12)}
    await charge(merchant, 5, "outro", created_at=DAY1)
    await login(client)
    html = await results(client, "q=item")
    assert "12 cobranças · R$\xa012,66" in html
    seen = rows(html)
    assert len(seen) == 10
    more = re.search(r'hx-get="([^"]+)"[^>]*hx-target="#charges-more"', html)
    assert more is not None
    url = more.group(1).replace("&amp;", "&")
    assert "q=item" in url
    response = await client.get(url, headers={**HTMX, "HX-Target": "charges-more"})
    rest = (await response.get_data()).decode()
    assert "charges-totals" not in rest and "Carregar mais" not in rest
    assert seen | rows(rest) == {str(p.id) for p in made}
    assert not seen & rows(rest)


async def test_full_page_keeps_the_filter_and_bad_values_are_said(client, merchant) -> None:
    made = await seed(merchant)
    await login(client)
    page = (await (await client.get("/dashboard?status=paid")).get_data()).decode()
    assert 'id="charges-filter"' in page and 'hx-push-url="true"' in page
    assert '<option value="paid" selected>' in page
    section = page.split('id="charges-results"')[1].split("</div>")[0]
    assert rows(section) == {str(made["bolo"].id)}

    html = await results(client, "de=ontem&status=estornado")
    assert "Data inválida." in html and "Situação inválida." in html
