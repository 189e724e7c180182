"""How `PspClient` talks to a PSP: the pooled HTTP client, the retry policy, and every
failure turned into a `PspError` that names the step and what the PSP said."""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from dataclasses import dataclass
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from pixweb.errors import (
    PspAuthError,
    PspError,
    PspNotFoundError,
    PspRejectedError,
    PspTlsError,
    PspUnavailableError,
)
from pixweb.psp.schemas import Problema
from pixweb.psp.tls import CLIENT_CERTIFICATE_REFUSED, describe_tls_failure

M = TypeVar("M", bound=BaseModel)

# Methods a retry cannot turn into a second effect (RFC 9110 §9.2.2). PATCH revises a charge
# (its `revisao` grows) and POST creates: neither is repeated blindly.
IDEMPOTENT = frozenset({"GET", "PUT", "DELETE"})


def retryable(status: int) -> bool:
    return status == 429 or status >= 500


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` in all for idempotent calls; waits grow `backoff`, 2×, 4×... (capped at
    `max_delay`), each with random jitter over its upper half so clients do not march."""

    attempts: int = 3
    backoff: float = 0.25
    max_delay: float = 5.0

    def delay(self, failures: int) -> float:
        ceiling = min(self.max_delay, self.backoff * 2.0 ** (failures - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def make_http_client(
    base_url: str, context: ssl.SSLContext | None, *, timeout: float, connect_timeout: float
) -> httpx.AsyncClient:
    """One pool per PSP connection: keep-alive HTTP/1.1, the merchant's certificate on every
    connection (no context: the sandbox's plain http), no proxy/netrc from the environment,
    no redirects followed."""
    return httpx.AsyncClient(
        base_url=base_url,
        verify=context if context is not None else True,
        http2=False,
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=10, max_keepalive_connections=5, keepalive_expiry=30),
        trust_env=False,
        follow_redirects=False,
        headers={"Accept": "application/json", "User-Agent": "pixweb"},
    )


async def client_certificate_refused(
    url: httpx.URL, context: ssl.SSLContext, seconds: float
) -> bool:
    """Whether the server drops every connection from this certificate right after the
    handshake. In TLS 1.3 a server checks the client's certificate after the client has
    finished its side, so a refusal reaches the client as a reset on its first read: open one
    connection and ask for something; any answer at all means the certificate was accepted."""
    host, port = url.host, url.port or 443
    try:
        async with asyncio.timeout(seconds):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=host
            )
    except (OSError, TimeoutError):
        return False
    try:
        async with asyncio.timeout(seconds):
            writer.write(f"HEAD / HTTP/1.1\r\nHost: {url.netloc.decode()}\r\n\r\n".encode())
            await writer.drain()
            return await reader.read(1) == b""
    except (ssl.SSLError, ConnectionError):
        return True
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(seconds):
                await writer.wait_closed()


async def transport_error(
    error: httpx.TransportError, *, step: str, context: ssl.SSLContext | None, seconds: float
) -> PspError:
    """A network failure as a domain error: TLS problems are PspTlsError (never retried),
    the rest PspUnavailableError."""
    if isinstance(error, httpx.TimeoutException):
        return PspUnavailableError(
            f"the PSP did not answer in time ({type(error).__name__})", step=step
        )
    detail = describe_tls_failure(error, handshake=isinstance(error, httpx.ConnectError))
    if detail:
        return PspTlsError(detail, step="tls")
    if isinstance(error, httpx.ConnectError):
        return PspUnavailableError(f"cannot connect to the PSP ({error})", step=step)
    url = error.request.url
    if context is not None and await client_certificate_refused(url, context, seconds):
        return PspTlsError(CLIENT_CERTIFICATE_REFUSED, step="tls")
    reason = str(error) or type(error).__name__
    return PspUnavailableError(f"the connection to the PSP failed ({reason})", step=step)


def problem_of(response: httpx.Response) -> Problema | None:
    """The RFC 7807 body of an error answer, if it has one."""
    try:
        problem = Problema.model_validate_json(response.content)
    except ValidationError:
        return None
    said = problem.model_fields_set & {"type", "title", "detail", "violacoes"}
    return problem if said else None  # any other JSON object is not a problem


def describe(response: httpx.Response, problem: Problema | None) -> str:
    """The PSP's own words: status, title, detail and each violation."""
    if problem is None:
        text = response.text.strip()[:200]
        return f"{response.status_code}" + (f": {text}" if text else "")
    said = f"{response.status_code} {problem.title}".strip()
    if problem.detail:
        said += f": {problem.detail}"
    for v in problem.violacoes:
        said += f"; {v.propriedade or '?'}: {v.razao or '?'}"
        if v.valor is not None:
            said += f" (valor {v.valor!r})"
    if problem.correlation_id:
        said += f" [correlationId {problem.correlation_id}]"
    return said


def certificate_refused_by_proxy(response: httpx.Response, problem: Problema | None) -> bool:
    """nginx in front of a PSP accepts the handshake and answers 400 "No required SSL
    certificate was sent" / "The SSL certificate error" in HTML."""
    return (
        problem is None
        and response.status_code == 400
        and "ssl certificate" in response.text.lower()
    )


def response_error(response: httpx.Response, *, step: str, scope: str, attempts: int) -> PspError:
    """An answer that is not a success (a 401 here is the second one, after a new token)."""
    status, problem = response.status_code, problem_of(response)
    said = describe(response, problem)
    call = f"{response.request.method} {response.request.url.path}"
    violacoes = [v.model_dump() for v in problem.violacoes] if problem else []
    fields: dict[str, str] = {}
    for v in problem.violacoes if problem else []:
        key = v.propriedade or "?"
        fields[key] = f"{fields[key]}; {v.razao}" if key in fields else (v.razao or "?")
    if certificate_refused_by_proxy(response, problem):
        return PspTlsError(f"the PSP refused the client certificate ({said})", step="tls")
    if status == 401:
        return PspAuthError(
            f"the PSP refused a freshly issued token for {call} ({said})",
            step="token",
            psp_status=status,
        )
    if status == 403:
        return PspAuthError(
            f"the PSP denied {call}, which needs the scope {scope} ({said})",
            step="permission",
            psp_status=status,
        )
    if retryable(status):
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return PspUnavailableError(
            f"the PSP failed {call}{tries} ({said})", step=step, psp_status=status
        )
    if status == 404:
        return PspNotFoundError(
            f"the PSP does not know {call} ({said})", step=step, psp_status=status
        )
    if 400 <= status < 500:
        return PspRejectedError(
            f"the PSP refused {call} ({said})",
            step=step,
            psp_status=status,
            violacoes=violacoes,
            fields=fields or None,
        )
    return PspError(f"unexpected answer to {call} ({said})", step=step, psp_status=status)


def parse(model: type[M], response: httpx.Response, *, step: str) -> M:
    """A success body as `model`, or a PspError saying which field the PSP got wrong."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        call = f"{response.request.method} {response.request.url.path}"
        raise PspError(
            f"the PSP answered {call} with an invalid {model.__name__} ({problems})",
            step=step,
            psp_status=response.status_code,
        ) from None
