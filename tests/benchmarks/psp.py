"""The lean PSP's process (lean_psp.py) seen from the benchmark: certificates, start, stop,
steering, and connecting a pixweb merchant to it (`PUT /merchants/me/psp`, as a merchant
does: pixweb proves the token, the scopes and the webhook there before storing anything).
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import trustme

from tests.server import ROOT, free_port

START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
CLIENT_ID = "pixweb-bench"
CLIENT_SECRET = "bench-psp-secret"
# When every delivered Pix was "received": the same in the delivery and the PSP's answer.
HORARIO = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
E2E_PREFIX = "E87654321"  # the webhook deliveries' Pix; the listing's start with E12345678


def e2eid(n: int) -> str:
    return f"{E2E_PREFIX}2026{n:020d}"


class Helper:
    """A helper process of the benchmark (its own process group), ready once `port` listens."""

    def __init__(self, folder: Path, command: list[str], port: int) -> None:
        self.folder, self.command, self.port = folder, command, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Helper:
        log = (self.folder / "process.log").open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[2]} exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.command[2]} not listening within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)

    def cpu_seconds(self) -> float:
        if self.process is None:
            return 0.0
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def certificates(folder: Path) -> trustme.CA:
    """A fresh CA, and its server certificate for 127.0.0.1 written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
    server.private_key_pem.write_to_path(str(folder / "server.key"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    return ca


class LeanPsp(Helper):
    """`python -m tests.benchmarks.lean_psp` on a free port, with fresh trustme certificates."""

    def __init__(self, workdir: Path) -> None:
        folder, port = workdir / f"lean-psp-{uuid.uuid4().hex[:6]}", free_port()
        ca = certificates(folder)
        command = [sys.executable, "-m", "tests.benchmarks.lean_psp"]
        super().__init__(folder, [*command, "--port", str(port), "--certs", str(folder)], port)
        self.url = f"https://127.0.0.1:{port}"
        self.client = ca.issue_cert("loja.bench.example", organization_name="Loja Benchmark")
        self.ca_pem = ca.cert_pem.bytes().decode()
        self.client_pem = "".join(b.bytes().decode() for b in self.client.cert_chain_pems)
        self.client_key = self.client.private_key_pem.bytes().decode()

    def __enter__(self) -> LeanPsp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca_pem)
        cert = self.folder / "client.pem"
        if not cert.exists():
            cert.write_text(self.client_pem + self.client_key)
        context.load_cert_chain(cert)
        return context

    async def steer(self, path: str, body: Any) -> None:
        """POST to the PSP's `/_bench/...` controls (set-up, not measured)."""
        async with httpx.AsyncClient(base_url=self.url, verify=self.tls(), timeout=60) as http:
            answer = await http.post(path, json=body)
            answer.raise_for_status()

    async def add_pix(self, items: list[dict[str, Any]]) -> None:
        """What `GET /pix/{e2eid}` answers for these Pix from now on."""
        for start in range(0, len(items), 2000):
            await self.steer("/_bench/pix", items[start : start + 2000])

    async def connect(self, http: httpx.AsyncClient, token: str) -> str:
        """Connect the merchant of `token` to this PSP: its webhook intake URL."""
        body = {
            "base_url": self.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "certificate_pem": self.client_pem,
            "private_key_pem": self.client_key,
            "server_ca_pem": self.ca_pem,
        }
        answer = await http.put(
            "/merchants/me/psp", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        if answer.status_code != 200:
            raise RuntimeError(f"PSP connect: {answer.status_code} {answer.text[:300]}")
        return str(answer.json()["webhook_url"])


def pix_item(n: int, payment: dict[str, Any], chave: str) -> dict[str, Any]:
    """The Pix paying `payment` in full, as the PSP reports it."""
    return {
        "endToEndId": e2eid(n),
        "txid": payment["bank_payment_id"],
        "valor": payment["value"],
        "horario": HORARIO,
        "chave": chave,
    }
