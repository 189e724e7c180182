"""Per-request bookkeeping: a request id, the request counter, one JSON log line."""

from __future__ import annotations

import atexit
import json
import logging
import queue
import time
import uuid
from logging.handlers import QueueHandler, QueueListener

from quart import Quart, Response, g, has_request_context, request, websocket
from quart.typing import ResponseTypes

from pixweb.deps import get_metrics
from pixweb.throttle import client_address

REQUEST_ID_HEADER = "X-Request-ID"
log = logging.getLogger("pixweb.access")


def request_id() -> str:
    """The id of the current request or socket, the same for all who ask: its response
    header, its log lines, a 500's body. Made on first use, so a failure before this
    module's hook ran (another hook's) is still told and logged under one id."""
    current: str | None = g.get("request_id")
    if current is None:
        incoming = (request if has_request_context() else websocket).headers.get(
            REQUEST_ID_HEADER, ""
        )
        # Keep a caller's id when it looks like one; never log arbitrary header text.
        ok = 0 < len(incoming) <= 64 and incoming.isascii() and incoming.replace("-", "").isalnum()
        current = g.request_id = incoming if ok else uuid.uuid4().hex
    return current


def _written_by_a_thread(writer: logging.Handler) -> QueueHandler:
    """A handler that only queues lines; a thread of its own writes them with `writer`
    (the logging cookbook's QueueHandler and QueueListener). Every request logs a line on
    the event loop: a stderr that writes slowly or not at all (a full pipe to a log
    collector) would stop every request and socket of the process with it."""
    writer.setFormatter(logging.Formatter("%(message)s"))
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = QueueListener(lines, writer)
    listener.start()
    atexit.register(listener.stop)  # what is queued is written before the process ends
    return QueueHandler(lines)


def init_app(app: Quart, *, json_logs: bool) -> None:
    """Tag every request with an id, count it, and (production) log it as one JSON line."""
    if json_logs and not log.handlers:  # one handler per process, however many apps
        log.addHandler(_written_by_a_thread(logging.StreamHandler()))
        log.setLevel(logging.INFO)
        log.propagate = False

    @app.before_request
    async def start() -> None:
        request_id()
        g.started = time.perf_counter()

    @app.before_websocket
    async def start_socket() -> None:
        request_id()

    @app.after_websocket
    async def finish_socket(response: ResponseTypes | None) -> ResponseTypes | None:
        if response is not None:  # a handshake refused with an HTTP response
            response.headers[REQUEST_ID_HEADER] = request_id()
        return response

    @app.after_request
    async def finish(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        get_metrics().requests.labels(request.method, route, str(response.status_code)).inc()
        response.headers[REQUEST_ID_HEADER] = request_id()
        if json_logs:
            log.info(
                json.dumps(
                    {
                        "request_id": request_id(),
                        "method": request.method,
                        "path": request.path,
                        "route": route,
                        "status": response.status_code,
                        "duration_ms": round((time.perf_counter() - g.get("started", 0)) * 1000, 2),
                        "remote": client_address(),  # the client, not the proxy in front
                    }
                )
            )
        return response
