"""The fixed stack's floor: the least any Quart app served as pixweb serves (hypercorn, uvloop,
permessage-deflate declined, the same garbage-collector settings, sends without Quart's
`sleep(0)`) costs on this machine, driven by the same clients.

`python -m tests.benchmarks.floor_app serve --host H --port P` answers only what the
scenarios call, with nothing behind it (no database, broker, auth, validation or logs):
- `GET /healthz` and `POST /payments/pix` answer a small JSON body;
- `/ws/payments/<id>` sends a pending status, then waits;
- `POST /payments/pix/confirmation?id=X` wakes the sockets of `/ws/payments/X` (no `id`:
  those of `/ws/payments/crowd`) and each sends a paid status: the plainest push on POST and
  fan-out a Quart app can do (one handler task per socket, one send each).
Where pixweb misses a target that this app misses too, the stack is what stands in the way.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict
from typing import Any

import uvloop
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, request, websocket

from pixweb.serving import MAX_WS_MESSAGE, decline_websocket_compression, tune_garbage_collector
from pixweb.ws.common import unyielding_send

PENDING = '<div id="payment-status" data-status="pending" hx-swap-oob="true">Aguardando</div>'
PAID = '<div id="payment-status" data-status="paid" hx-swap-oob="true">Pago</div>'


def create_app() -> Quart:
    app = Quart(__name__)
    paid: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.post("/payments/pix")
    async def create_payment() -> tuple[dict[str, Any], int]:
        return {"id": "00000000-0000-4000-8000-000000000000", "status": "pending"}, 201

    @app.post("/payments/pix/confirmation")
    async def confirm() -> dict[str, Any]:
        paid[request.args.get("id", "crowd")].set()
        return {"status": "paid"}

    @app.websocket("/ws/payments/<payment_id>")
    async def payment_socket(payment_id: str) -> None:
        await websocket.accept()
        await websocket.send(PENDING)
        send = unyielding_send()
        await paid[payment_id].wait()
        await send(PAID)
        while True:
            await websocket.receive()

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1, choices=[1])
    args = parser.parse_args()
    config = Config()
    config.bind = [f"{args.host}:{args.port}"]
    config.accesslog = None
    config.websocket_max_message_size = MAX_WS_MESSAGE
    decline_websocket_compression()
    app = create_app()
    tune_garbage_collector()
    uvloop.run(serve(app, config))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
