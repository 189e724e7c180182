"""The payment socket, through Quart's test client: what a connected page really receives."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from quart.testing.connections import WebsocketDisconnectError
from quart.typing import TestClientProtocol as Client

from pixweb.models import Payment
from pixweb.services.clock import utcnow
from pixweb.ws import rooms

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def create(client: Client, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post("/payments/pix", json={"value": "10.00", **body}, headers=auth)
    assert response.status_code == 201
    return dict(await response.get_json())


async def confirm(client: Client, sign: Any, payment: dict[str, Any]) -> int:
    body, headers = sign({"bank_payment_id": payment["bank_payment_id"], "value": payment["value"]})
    response = await client.post("/payments/pix/confirmation", data=body, headers=headers)
    return response.status_code


async def receive(socket: Any, within: float = 2.0) -> str:
    return str(await asyncio.wait_for(socket.receive(), within))


async def nothing_more(socket: Any, wait: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(socket.receive(), wait)


async def test_connect_sends_current_state_then_the_paid_fragment(
    client: Client, auth: dict[str, str], sign: Any
) -> None:
    payment = await create(client, auth)
    async with client.websocket(f"/ws/payments/{payment['id']}") as socket:
        first = await receive(socket)
        assert 'id="payment-status"' in first and 'data-status="pending"' in first
        assert 'hx-swap-oob="true"' in first
        assert await confirm(client, sign, payment) == 200
        pushed = await receive(socket)
        assert 'data-status="paid"' in pushed and "Pagamento confirmado" in pushed
        await nothing_more(socket)


async def test_a_page_connecting_after_the_payment_sees_paid_at_once(
    client: Client, auth: dict[str, str], sign: Any
) -> None:
    payment = await create(client, auth)
    assert await confirm(client, sign, payment) == 200
    async with client.websocket(f"/ws/payments/{payment['id']}") as socket:
        assert 'data-status="paid"' in await receive(socket)


async def test_fifty_concurrent_confirmations_push_exactly_once(
    client: Client, auth: dict[str, str], sign: Any
) -> None:
    payment = await create(client, auth)
    async with client.websocket(f"/ws/payments/{payment['id']}") as socket:
        await receive(socket)
        statuses = await asyncio.gather(*(confirm(client, sign, payment) for _ in range(50)))
        assert statuses == [200] * 50
        assert 'data-status="paid"' in await receive(socket)
        await nothing_more(socket, 0.3)


async def test_pages_opening_at_once_read_their_payments_a_few_at_a_time_and_all_get_them(
    client: Client, auth: dict[str, str], sign: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reconnect storm's first reads wait their turn in the process (rooms.FIRST_READS),
    so a confirmation meanwhile does not queue behind thousands of them in the database."""
    monkeypatch.setattr(rooms, "FIRST_READS", 1)
    charges = [await create(client, auth) for _ in range(12)]

    async def page(payment: dict[str, Any], paid: bool) -> str:
        async with client.websocket(f"/ws/payments/{payment['id']}") as socket:
            fragment = await receive(socket, 10)
            if paid and 'data-status="paid"' not in fragment:  # confirmed after it opened
                fragment = await receive(socket, 10)
            return fragment

    pages = [page(payment, paid=n == 0) for n, payment in enumerate(charges)]
    opening = asyncio.gather(*pages)
    await asyncio.sleep(0)
    assert await confirm(client, sign, charges[0]) == 200
    fragments = await opening
    assert 'data-status="paid"' in fragments[0]
    assert all('data-status="pending"' in fragment for fragment in fragments[1:])


async def test_two_sockets_on_two_payments_receive_only_their_own_events(
    client: Client, auth: dict[str, str], sign: Any
) -> None:
    first, second = await create(client, auth), await create(client, auth)
    async with (
        client.websocket(f"/ws/payments/{first['id']}") as one,
        client.websocket(f"/ws/payments/{second['id']}") as two,
    ):
        await receive(one)
        await receive(two)
        assert await confirm(client, sign, second) == 200
        assert 'data-status="paid"' in await receive(two)
        await nothing_more(one)
        cancelled = await client.post(f"/payments/{first['id']}/cancel", headers=auth)
        assert cancelled.status_code == 200
        assert 'data-status="cancelled"' in await receive(one)
        await nothing_more(two)


async def test_expiry_is_pushed_when_it_happens_without_any_request(
    client: Client, auth: dict[str, str]
) -> None:
    payment = await create(client, auth)
    soon = utcnow() + timedelta(milliseconds=300)
    await Payment.filter(id=payment["id"]).update(expires_at=soon)
    async with client.websocket(f"/ws/payments/{payment['id']}") as socket:
        assert 'data-status="pending"' in await receive(socket)
        expired = await receive(socket, within=3)
        assert 'data-status="expired"' in expired
        assert "qr_code" not in expired  # the QR code is gone with the pending state


async def test_json_format_uses_the_seed_event_names(
    client: Client, auth: dict[str, str], sign: Any
) -> None:
    payment = await create(client, auth)
    async with client.websocket(f"/ws/payments/{payment['id']}?format=json") as socket:
        first = json.loads(await receive(socket))
        assert first["event"] == "payment-status"
        assert first["data"]["status"] == "pending"
        assert first["data"]["id"] == payment["id"]
        assert await confirm(client, sign, payment) == 200
        confirmed = json.loads(await receive(socket))
        assert confirmed["event"] == f"payment-confirmed-{payment['id']}"
        assert confirmed["data"]["status"] == "paid"
        # Rendered from the event's committed state: exactly what the database holds.
        stored = await client.get(f"/payments/{payment['id']}", headers=auth)
        assert confirmed["data"] == await stored.get_json()


async def test_unknown_payment_is_closed_with_policy_violation(client: Client) -> None:
    async with client.websocket(f"/ws/payments/{UNKNOWN}") as socket:
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(socket)
    assert closed.value.args[0] == 1008


async def test_client_messages_are_ignored_and_big_ones_close_the_socket(
    client: Client, auth: dict[str, str], sign: Any
) -> None:
    payment = await create(client, auth)
    async with client.websocket(f"/ws/payments/{payment['id']}") as socket:
        await receive(socket)
        await socket.send("hello")
        await socket.send(json.dumps({"event": "anything"}))
        assert await confirm(client, sign, payment) == 200
        assert 'data-status="paid"' in await receive(socket)  # still served
        await socket.send("x" * 100_000)
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(socket)
    assert closed.value.args[0] == 1009


async def test_unsubscribing_leaves_no_channel_behind(
    client: Client, auth: dict[str, str], broker: Any
) -> None:
    payment = await create(client, auth)
    for _ in range(20):
        async with client.websocket(f"/ws/payments/{payment['id']}") as socket:
            await receive(socket)
    await asyncio.sleep(0.05)
    assert broker.channel_count == 0


async def test_many_watchers_of_one_payment_cost_no_read_per_change(
    client: Client, auth: dict[str, str], sign: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The payment's room renders once from the event's own state (no read at all), then
    hands the fragment to every socket."""
    from contextlib import AsyncExitStack

    from pixweb.services import payments

    payment = await create(client, auth)
    async with AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(client.websocket(f"/ws/payments/{payment['id']}"))
            for _ in range(20)
        ]
        for socket in sockets:
            assert 'data-status="pending"' in await receive(socket)
        reads: list[object] = []
        original = payments.get_payment

        async def counting_get_payment(*args: Any, **kwargs: Any) -> Any:
            reads.append(args)
            return await original(*args, **kwargs)

        monkeypatch.setattr(payments, "get_payment", counting_get_payment)
        assert await confirm(client, sign, payment) == 200
        for socket in sockets:
            assert 'data-status="paid"' in await receive(socket)
        assert reads == []


@pytest.mark.parametrize("query", ["", "?format=json"])
async def test_a_graceful_shutdown_closes_payment_sockets_1012(
    app: Any, client: Client, auth: dict[str, str], query: str
) -> None:
    """htmx's ws extension reconnects after 1012: the page moves to a live worker."""
    from pixweb.deps import SHUTDOWN_KEY

    payment = await create(client, auth)
    async with client.websocket(f"/ws/payments/{payment['id']}{query}") as socket:
        await receive(socket)
        app.extensions[SHUTDOWN_KEY].set()
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(socket)
    assert closed.value.args[0] == 1012
    async with client.websocket(f"/ws/payments/{payment['id']}{query}") as late:
        await receive(late)  # the current state, then the same close
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(late)
    assert closed.value.args[0] == 1012


async def test_a_watcher_that_falls_behind_ends_at_once_and_stays_ended() -> None:
    from pixweb.broker import SubscriptionLaggedError
    from pixweb.ws.rooms import INBOX_SIZE, Watcher

    watcher = Watcher(as_json=False)
    for i in range(INBOX_SIZE):
        watcher.offer((f"m{i}", {}))
    assert await watcher.next() == ("m0", {})
    for i in range(2):  # no await in between: the socket never got to send
        watcher.offer((f"late{i}", {}))
    for _ in range(2):  # nothing stale is sent: it closes (1013) and resyncs on reconnect
        with pytest.raises(SubscriptionLaggedError):
            await watcher.next()
    watcher.offer(("after", {}))
    with pytest.raises(SubscriptionLaggedError):
        await watcher.next()


async def test_a_waiting_watcher_wakes_for_a_message_and_for_its_end() -> None:
    from pixweb.ws.rooms import Watcher

    watcher = Watcher(as_json=True)
    waiting = asyncio.create_task(watcher.next())
    await asyncio.sleep(0)
    watcher.offer(("hello", {"type": "x"}))
    assert await asyncio.wait_for(waiting, 1) == ("hello", {"type": "x"})
    waiting = asyncio.create_task(watcher.next())
    await asyncio.sleep(0)
    watcher.fail(RuntimeError("gone"))
    with pytest.raises(RuntimeError, match="gone"):
        await asyncio.wait_for(waiting, 1)


@pytest.fixture
def paid_fragment_breaks(app: Any) -> Any:
    """Serve a status partial that fails to render the paid state (as an unset `paid_at`
    once did); calling the returned function puts the real partial back."""
    from jinja2 import ChoiceLoader, DictLoader

    original = app.jinja_env.loader
    broken = (
        '{% if status == "paid" %}{{ payment.no_such_field.at }}{% else %}'
        '<div id="payment-status" data-status="{{ status }}"></div>{% endif %}'
    )
    app.jinja_env.loader = ChoiceLoader(
        [DictLoader({"partials/payment_status.html": broken}), original]
    )

    def repair() -> None:
        app.jinja_env.loader = original

    yield repair
    repair()


async def test_a_change_that_fails_to_render_closes_its_sockets_1013_to_resync(
    client: Client,
    auth: dict[str, str],
    sign: Any,
    paid_fragment_breaks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The pages are told to reconnect (htmx's ws extension does after 1013) and the failure
    is logged; the API sockets, whose message rendered, are served as usual."""
    payment = await create(client, auth)
    url = f"/ws/payments/{payment['id']}"
    async with client.websocket(url) as page, client.websocket(f"{url}?format=json") as api:
        assert 'data-status="pending"' in await receive(page)
        assert json.loads(await receive(api))["data"]["status"] == "pending"
        assert await confirm(client, sign, payment) == 200
        confirmed = json.loads(await receive(api))
        assert confirmed["event"] == f"payment-confirmed-{payment['id']}"
        with pytest.raises(WebsocketDisconnectError) as closed:
            await receive(page)
        assert closed.value.args[0] == 1013
        await nothing_more(api)  # still open
    assert any(
        record.name == "pixweb.ws.rooms" and "could not render payment.paid" in record.message
        for record in caplog.records
    )
    paid_fragment_breaks()
    async with client.websocket(url) as page:  # the reconnect resyncs: paid
        assert 'data-status="paid"' in await receive(page)
