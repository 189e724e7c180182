"""Schemathesis against `/openapi.json`: every API route, authenticated, a bounded run.

The document must say what the API does: every status a route answers is declared with its
body and media type, requests the document rules out are refused, and requests it allows
are accepted, save for the rules JSON Schema cannot state, which the document states in
words (see `CONFIG`). The run is schemathesis' own engine (what its CLI runs: examples,
coverage, fuzzing and stateful phases, every check) against the ASGI app, in process.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
import requests
import schemathesis
from quart import Quart
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER
from schemathesis.python import asgi

from pixweb.api import accounts as api_accounts
from pixweb.api import auth as api_auth
from pixweb.app import create_app
from pixweb.config import Config
from pixweb.deps import CONFIG_KEY
from pixweb.services import webhooks

# Deterministic and bounded: up to 25 examples per operation and phase (about 30 s on SQLite).
# Positive data that only a rule beyond JSON Schema refuses, as the document says in words:
# a Pix key's check digits, a name or city with nothing left in ASCII, an e-mail address's
# shape (register, transfers: 400); a cursor not from `next_cursor` (400); a withdrawal,
# transfer or payment above the balance, or a confirmation whose value is not the charge's
# (422); a PSP connection's PEMs and URLs, which must parse and be reachable (400, 422); a
# refund above what is left of its Pix, or without the PSP or `external` it needs (422).
ACCEPTED = '"2xx", "3xx", "401", "403", "404", "409", "429", "5xx"'  # schemathesis' default
CONFIG = f"""
[generation]
max-examples = 25
deterministic = true

[[operations]]
include-name = "POST /auth/register"
checks.positive_data_acceptance.expected-statuses = [{ACCEPTED}, "400"]

[[operations]]
include-name = ["POST /accounts/me/withdrawals", "POST /accounts/me/payments"]
checks.positive_data_acceptance.expected-statuses = [{ACCEPTED}, "422"]

[[operations]]
include-name = "POST /accounts/me/transfers"
checks.positive_data_acceptance.expected-statuses = [{ACCEPTED}, "400", "422"]

[[operations]]
include-name = ["GET /payments", "GET /pix/received"]
checks.positive_data_acceptance.expected-statuses = [{ACCEPTED}, "400"]

[[operations]]
include-name = "POST /payments/pix/confirmation"
checks.positive_data_acceptance.expected-statuses = [{ACCEPTED}, "422"]

[[operations]]
include-name = "PUT /merchants/me/psp"
checks.positive_data_acceptance.expected-statuses = [{ACCEPTED}, "400", "422"]

[[operations]]
include-name = [
    "POST /payments/{{payment_id}}/refunds", "POST /pix/received/{{end_to_end_id}}/refunds"
]
checks.positive_data_acceptance.expected-statuses = [{ACCEPTED}, "422"]

[[operations]]
include-name = ["POST /webhook-endpoints", "PATCH /webhook-endpoints/{{endpoint_id}}"]
checks.positive_data_acceptance.expected-statuses = [{ACCEPTED}, "400", "422"]

[[operations]]
include-name = "GET /webhook-endpoints/{{endpoint_id}}/deliveries"
checks.positive_data_acceptance.expected-statuses = [{ACCEPTED}, "400"]
"""


class BankSignature(requests.auth.AuthBase):
    """Sign the body as sent wherever a signature header is sent (schemathesis fills the header
    with noise; a run that drops it to test the 401 keeps it dropped)."""

    def __init__(self, webhook_secret: str) -> None:
        self.webhook_secret = webhook_secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if webhooks.SIGNATURE_HEADER in request.headers:
            body = request.body or b""
            raw = body.encode() if isinstance(body, str) else body
            request.headers[webhooks.SIGNATURE_HEADER] = webhooks.sign(raw, self.webhook_secret)
        return request


def _seed(app: Quart) -> str:
    """The merchants the document's examples name (the one logging in, the one transfers go
    to), a balance and a charge; the token of the first."""
    login = api_auth.LOGIN_EXAMPLE
    merchants = [
        {**api_auth.REGISTER_EXAMPLE, "email": login["email"], "password": login["password"]},
        {**api_auth.REGISTER_EXAMPLE, "email": api_accounts.TRANSFER_EXAMPLE["to_email"]},
    ]
    with asgi.get_client(app) as client:
        for merchant in merchants:
            assert client.post("/auth/register", json=merchant).status_code == 201
        token = client.post("/auth/login", json=login).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert client.post("/accounts/me/deposits", json={"value": "500.00"}, headers=auth).ok
        assert client.post("/payments/pix", json={"value": "10.00"}, headers=auth).ok
    return str(token)


def _run(stream: Any) -> tuple[dict[str, set[str]], dict[str, set[int]]]:
    """Each failing check by operation (title, status, request); each operation's statuses."""
    failures: dict[str, set[str]] = defaultdict(set)
    statuses: dict[str, set[int]] = defaultdict(set)
    for event in stream:
        if isinstance(event, events.FatalError | events.NonFatalError):
            failures["(engine)"].add(repr(event.__dict__))
        if not isinstance(event, events.ScenarioFinished):
            continue
        recorder = event.recorder
        for case_id, interaction in recorder.interactions.items():
            if interaction.response is not None:
                case = recorder.cases[case_id].value
                statuses[f"{case.method} {case.path}"].add(interaction.response.status_code)
        for case_id, checks in recorder.checks.items():
            for check in checks:
                if check.status != Status.FAILURE or check.failure_info is None:
                    continue
                interaction = recorder.interactions.get(case_id)
                response = interaction.response if interaction else None
                case = recorder.cases[case_id].value
                failures[recorder.label].add(
                    f"{check.name}: {check.failure_info.failure.title}"
                    f" -> {response.status_code if response else None}"
                    f" for {case.method} {case.formatted_path} query={case.query!r}"
                    f" body={str(case.body)[:200]}"
                    f" answer={response.content[:200] if response else None!r}"
                )
    return failures, statuses


@pytest.fixture
def app() -> Quart:
    # No sign-up/login throttle: the run exercises their validation, not the 429 path
    # (tests/api covers it; the document declares it).
    return create_app(
        {
            "testing": True,
            "database_url": "sqlite://:memory:",
            "auto_migrate": True,
            "auth_rate_limit": 0,
        }
    )


def test_api_matches_its_openapi_document(app: Quart) -> None:
    try:
        token = _seed(app)
        # The token as the document's bearer scheme: schemathesis sends it, and leaves it out
        # or spoils it where a check needs a 401.
        auth = f'\n[auth.openapi.bearer]\nbearer = "{token}"\n'
        config = SchemathesisConfig.from_str(CONFIG + auth)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
        settings: Config = app.extensions[CONFIG_KEY]
        signature = BankSignature(settings.webhook_secret)

        def sign_calls(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
            kwargs["auth"] = signature  # a requests auth: it sees the body as sent

        GLOBAL_HOOK_DISPATCHER.register_hook_with_name(sign_calls, "before_call")
        try:
            failures, statuses = _run(from_schema(schema).execute())
        finally:
            GLOBAL_HOOK_DISPATCHER.unregister(sign_calls)
    finally:
        asgi.shutdown_lifespans()
    assert not failures, "\n".join(
        f"{operation}:\n  " + "\n  ".join(sorted(lines)) for operation, lines in failures.items()
    )
    # Every operation was called, and the credentials worked: each one answered past 401
    # (the bank's signature included), and all but UNREACHED succeeded at least once.
    operations = {f"{method.upper()} {path}" for method, path in _operations(schema)}
    assert operations <= set(statuses)
    assert all(statuses[operation] - {401} for operation in operations), statuses
    succeeded = {operation for operation in operations if min(statuses[operation]) < 300}
    assert operations - succeeded <= UNREACHED, sorted(operations - succeeded)


# What random data cannot succeed at: paying a code takes another merchant's charge, a QR
# image a charge's id; connecting a PSP takes one reachable over mTLS, and the other PSP
# routes a connection.
UNREACHED = {
    "POST /accounts/me/payments",
    "GET /payments/pix/qr_code/{filename}",
    "PUT /merchants/me/psp",
    "GET /merchants/me/psp",
    "DELETE /merchants/me/psp",
    "POST /merchants/me/psp/webhook-token",
    # The PSP webhook intake takes a connected merchant's secret token in the path.
    "POST /webhooks/pix/{token}",
    "POST /webhooks/pix/{token}/pix",
    # Attaching takes a received Pix that paid no charge, named by its end_to_end_id.
    "POST /pix/received/{end_to_end_id}/attach",
    # A refund takes a paid charge (a Pix the bank confirmed) and a PSP or `external`.
    "POST /payments/{payment_id}/refunds",
    # A webhook endpoint takes a URL that passes netguard (https, a public address that
    # resolves); the other webhook routes take such an endpoint's id.
    "POST /webhook-endpoints",
    "GET /webhook-endpoints/{endpoint_id}",
    "PATCH /webhook-endpoints/{endpoint_id}",
    "DELETE /webhook-endpoints/{endpoint_id}",
    "POST /webhook-endpoints/{endpoint_id}/rotate-secret",
    "POST /webhook-endpoints/{endpoint_id}/test",
    "GET /webhook-endpoints/{endpoint_id}/deliveries",
    "POST /webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/resend",
}


def _operations(schema: Any) -> list[tuple[str, str]]:
    return [(result.ok().method, result.ok().path) for result in schema.get_all_operations()]
