"""Merchant-webhook receivers for scenario 7, in their own process: HTTPS (a trustme
certificate for 127.0.0.1, which the server trusts through trusting_server.py) on several
ports, each noting when every delivery arrived and the event's `created_at`.

`python -m tests.benchmarks.receivers --ports P1,P2,... --failing PN --certs DIR`: the
failing port answers 500 after FAIL_DELAY seconds, the others 200 at once.
`GET /_stats` on any port answers `{port: [[arrived, created, event id], ...]}` (epoch
seconds), and nothing else is served.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import time
from datetime import datetime
from pathlib import Path
from typing import cast

import uvloop

FAIL_DELAY = 1.0
Arrivals = dict[int, list[tuple[float, float, str]]]


class Receiver(asyncio.Protocol):
    def __init__(self, port: int, failing: bool, seen: Arrivals) -> None:
        self.port, self.failing, self.seen = port, failing, seen
        self.buffer = bytearray()
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.handle(head[0], body)

    def handle(self, line: str, body: bytes) -> None:
        arrived = time.time()
        assert self.transport is not None
        if line.startswith("GET /_stats"):
            self.transport.write(_answer(200, json.dumps(self.seen).encode()))
            return
        try:
            event = json.loads(body)
            created = datetime.fromisoformat(event["created_at"]).timestamp()
            self.seen[self.port].append((arrived, created, str(event["id"])))
        except (ValueError, KeyError, TypeError):
            self.transport.write(_answer(400, b'{"error": "not an event"}'))
            return
        if self.failing:
            loop = asyncio.get_running_loop()
            loop.call_later(FAIL_DELAY, self.transport.write, _answer(500, b'{"error": "down"}'))
        else:
            self.transport.write(_answer(200, b"{}"))


def _answer(status: int, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


async def serve(ports: list[int], failing: int, certs: Path) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    seen: Arrivals = {port: [] for port in ports}
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(
            lambda port=port: Receiver(port, port == failing, seen),
            "127.0.0.1",
            port,
            ssl=context,
            backlog=512,
        )
        for port in ports
    ]
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", required=True)
    parser.add_argument("--failing", type=int, required=True)
    parser.add_argument("--certs", type=Path, required=True)
    args = parser.parse_args()
    ports = [int(p) for p in args.ports.split(",")]
    uvloop.run(serve(ports, args.failing, args.certs))


if __name__ == "__main__":
    main()
