"""One request, one id: a 500's body, its X-Request-ID header, the error log and the access
log all carry the same id (the caller's, when it sent a usable one)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from pixweb.observability import REQUEST_ID_HEADER
from tests.support import PRODUCTION

ID_IN_DETAIL = re.compile(r"request id ([0-9A-Za-z-]+)")


def add_failing_route(app: Quart) -> None:
    @app.get("/test-only/fails")
    async def fails() -> str:
        raise RuntimeError("boom")


def error_ids(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The request ids the error log names, one per logged error."""
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    ids = []
    for record in errors:
        assert "boom" in str(record.exc_info), record.getMessage()  # logged once, with the cause
        match = ID_IN_DETAIL.search(record.getMessage())
        ids.append(match.group(1) if match else "")
    return ids


def body_id(body: dict[str, Any]) -> str:
    assert body["error"] == "internal_error"
    match = ID_IN_DETAIL.search(body["detail"])
    assert match, body
    return match.group(1)


@pytest.mark.parametrize("sent", [None, "caller-id-42", '"}, "forged": true'])
async def test_a_500_names_one_id_in_body_header_and_log(
    app: Quart, caplog: pytest.LogCaptureFixture, sent: str | None
) -> None:
    add_failing_route(app)
    headers = {"Accept": "application/json"}
    if sent:
        headers[REQUEST_ID_HEADER] = sent
    with caplog.at_level(logging.ERROR):
        response = await app.test_client().get("/test-only/fails", headers=headers)
    assert response.status_code == 500
    header = response.headers[REQUEST_ID_HEADER]
    assert header
    assert body_id(await response.get_json()) == header
    assert error_ids(caplog) == [header]
    if sent == "caller-id-42":
        assert header == sent
    elif sent:
        assert sent not in caplog.text  # a forged id is replaced, never logged


async def test_the_html_500_page_logs_the_id_of_its_header(
    app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    async def page_fails() -> str:
        raise RuntimeError("boom")

    # An endpoint of a `web_` blueprint: a page, answered in HTML.
    app.add_url_rule("/test-only/page-fails", "web_test.page_fails", page_fails)
    with caplog.at_level(logging.ERROR):
        response = await app.test_client().get("/test-only/page-fails")
    assert response.status_code == 500
    assert response.content_type.startswith("text/html")
    header = response.headers[REQUEST_ID_HEADER]
    assert error_ids(caplog) == [header]
    assert f"<code>{header}</code>" in await response.get_data(as_text=True)  # for support


async def test_a_failure_before_the_id_was_assigned_still_has_one_id(
    app: Quart, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A before-request hook that runs first (a rate limiter, say) and fails: the error
    handler and the response header must still agree."""

    async def fails_first() -> None:
        raise RuntimeError("boom first")

    app.before_request_funcs.setdefault(None, []).insert(0, fails_first)
    with caplog.at_level(logging.ERROR):
        response = await client.get("/healthz", headers={REQUEST_ID_HEADER: "early-1"})
    assert response.status_code == 500
    assert response.headers[REQUEST_ID_HEADER] == "early-1"
    assert body_id(await response.get_json()) == "early-1"
    assert error_ids(caplog) == ["early-1"]


class TestProduction:
    @pytest.fixture
    def app_overrides(self) -> dict[str, Any]:
        return dict(PRODUCTION)

    @pytest.fixture
    def access_log(self, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
        logger = logging.getLogger("pixweb.access")
        logger.addHandler(caplog.handler)  # the access logger does not propagate
        try:
            with caplog.at_level(logging.INFO, logger="pixweb.access"):
                yield
        finally:
            logger.removeHandler(caplog.handler)

    async def test_the_access_log_names_the_same_id(
        self, app: Quart, caplog: pytest.LogCaptureFixture, access_log: None
    ) -> None:
        add_failing_route(app)
        response = await app.test_client().get(
            "/test-only/fails", headers={"Accept": "application/json"}
        )
        assert response.status_code == 500
        header = response.headers[REQUEST_ID_HEADER]
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "pixweb.access"]
        assert [(line["request_id"], line["status"]) for line in lines] == [(header, 500)]
        assert body_id(await response.get_json()) == header
        assert error_ids(caplog) == [header]
