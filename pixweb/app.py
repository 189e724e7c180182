"""`create_app(overrides)`: the one place where pixweb is wired together."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask.templating import _default_template_ctx_processor as _flask_default_processor
from itsdangerous import URLSafeTimedSerializer
from quart import Quart
from quart.json.provider import DefaultJSONProvider
from quart.sessions import SecureCookieSessionInterface
from quart_schema import QuartSchema, conversion
from werkzeug.routing import IntegerConverter, Map

from pixweb import (
    __version__,
    db,
    error_handlers,
    headers,
    jsonload,
    observability,
    presenters,
    throttle,
    validation,
)
from pixweb.api import accounts as api_accounts
from pixweb.api import api_keys as api_api_keys
from pixweb.api import auth as api_auth
from pixweb.api import exports as api_exports
from pixweb.api import health as api_health
from pixweb.api import notifications as api_notifications
from pixweb.api import openapi as api_openapi
from pixweb.api import payments as api_payments
from pixweb.api import psp as api_psp
from pixweb.api import received as api_received
from pixweb.api import refunds as api_refunds
from pixweb.api import webhook_endpoints as api_webhook_endpoints
from pixweb.api import webhooks_in as api_webhooks_in
from pixweb.broker import make_broker
from pixweb.config import Config, load_config
from pixweb.deps import (
    BROKER_KEY,
    CONFIG_KEY,
    METRICS_KEY,
    PSP_CLIENTS_KEY,
    SHUTDOWN_KEY,
    TOKENS_KEY,
)
from pixweb.metrics import Metrics
from pixweb.netguard import UrlPolicy
from pixweb.psp.sandbox import routes as sandbox_psp
from pixweb.services import merchants
from pixweb.services.delivery import DeliveryWorker, event_body
from pixweb.services.expiry import ExpiryJob
from pixweb.services.psp_clients import PspClients
from pixweb.services.reconcile import ReconcileJob
from pixweb.services.webhook_sender import Sender
from pixweb.web import api_keys as web_api_keys
from pixweb.web import auth as web_auth
from pixweb.web import charges as web_charges
from pixweb.web import dashboard as web_dashboard
from pixweb.web import exports as web_exports
from pixweb.web import filters
from pixweb.web import payments as web_payments
from pixweb.web import psp as web_psp
from pixweb.web import tools as web_tools
from pixweb.web import webhooks as web_webhooks
from pixweb.ws import bank as ws_bank
from pixweb.ws import dashboard as ws_dashboard
from pixweb.ws import payments as ws_payments
from pixweb.ws import webhooks as ws_webhooks

ROOT = Path(__file__).resolve().parent.parent
MAX_BODY_BYTES = 64 * 1024
SWAGGER_ASSETS = "/static/vendor/swagger-ui/"


def create_app(overrides: Mapping[str, Any] | None = None) -> Quart:
    """Build the app: config, database lifecycle, broker, blueprints, error handlers."""
    config = load_config(overrides)
    app = Quart(
        "pixweb",
        root_path=str(ROOT),
        template_folder="templates",
        static_folder="static",
    )
    app.config.update(
        SECRET_KEY=config.secret_key,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        TESTING=config.testing,
        QUART_SCHEMA_SWAGGER_JS_URL=SWAGGER_ASSETS + "swagger-ui-bundle.js",
        QUART_SCHEMA_SWAGGER_CSS_URL=SWAGGER_ASSETS + "swagger-ui.css",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.production,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        **config.extra,
    )
    QuartSchema(
        app,
        info={"title": "pixweb", "version": __version__},
        redoc_ui_path=None,
        scalar_ui_path=None,
        security_schemes={
            # A logged-in merchant's token (every scope) or an API key (its scopes).
            "bearer": {"type": "http", "scheme": "bearer", "bearer_format": "JWT or pxw_ API key"}
        },
        openapi_provider_class=api_openapi.Provider,
    )
    app.json = _strict_json_provider(app)
    _reuse_type_adapters()
    app.session_interface = _SigningOnceSessions()
    throttle.init_app(app, config)
    broker = make_broker(config.broker_url)
    app.extensions[CONFIG_KEY] = config
    app.extensions[BROKER_KEY] = broker
    app.extensions[METRICS_KEY] = Metrics(broker)
    app.extensions[SHUTDOWN_KEY] = asyncio.Event()
    app.extensions[TOKENS_KEY] = merchants.TokenCache(config.secret_key)
    app.extensions[PSP_CLIENTS_KEY] = PspClients(
        encryption_key=config.encryption_key,
        url_policy=UrlPolicy(
            require_https=config.production, allow_private=config.allow_private_urls
        ),
        # Outside production the sandbox PSP is served, and development servers connect
        # every merchant to it by default; tests only when they set SANDBOX_PSP_CONNECT.
        sandbox_secret_key=None if config.production else config.secret_key,
        sandbox_connect=not config.production
        and bool(app.config.get("SANDBOX_PSP_CONNECT", not config.testing)),
    )
    _init_lifecycle(app, config)
    observability.init_app(app, json_logs=config.production)
    headers.init_app(app, production=config.production)
    blueprints = (
        api_health.blueprint,
        api_auth.blueprint,
        api_payments.blueprint,
        api_exports.blueprint,
        api_accounts.blueprint,
        api_notifications.blueprint,
        api_psp.blueprint,
        api_received.blueprint,
        api_refunds.blueprint,
        api_api_keys.blueprint,
        api_webhook_endpoints.blueprint,
        api_webhooks_in.blueprint,
        web_payments.blueprint,
        web_tools.blueprint,
        web_auth.blueprint,
        web_dashboard.blueprint,
        web_charges.blueprint,
        web_exports.blueprint,
        web_psp.blueprint,
        web_webhooks.blueprint,
        web_api_keys.blueprint,
        ws_payments.blueprint,
        ws_dashboard.blueprint,
        ws_bank.blueprint,
        ws_webhooks.blueprint,
    )
    app.url_map.converters.update(int=_IdConverter, bigint=_BigIdConverter)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    if not config.production:  # the built-in sandbox PSP: never served in production
        app.register_blueprint(sandbox_psp.blueprint)
    _drop_flask_context_processors(app)
    filters.init_app(app)
    error_handlers.init_app(app)
    return app


def _drop_flask_context_processors(app: Quart) -> None:
    """Remove the template context processor every blueprint inherits from Flask.

    Quart's blueprints are Flask's scaffold, which starts each one's list with Flask's own
    synchronous default processor: Quart runs a sync processor in its thread pool, so every
    template rendered under a blueprint (a payer socket's fragment, every page) waited for a
    thread to return `{}` (Flask's context variables are never set under Quart). The app's
    own async default (`g`, `request`, `session`) still runs for every template."""
    for name, processors in app.template_context_processors.items():
        if name is not None:
            processors[:] = [p for p in processors if p is not _flask_default_processor]


def _strict_json_provider(app: Quart) -> DefaultJSONProvider:
    """Keep quart-schema's encoder; decode numbers as Decimal, so no float holds money.

    NaN and Infinity (not JSON, but Python's parser takes them) become Decimal too, so the
    field's validation refuses them and the error names the field. Nesting is bounded
    (jsonload.MAX_DEPTH): a deeper body is a 400, not a RecursionError.
    """

    class StrictJSONProvider(type(app.json)):  # type: ignore[misc]
        ensure_ascii = False
        decoder = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal)

        def loads(self, s: str | bytes, **kwargs: Any) -> Any:
            return jsonload.loads(s, decoder=self.decoder)

    return StrictJSONProvider(app)


def _reuse_type_adapters() -> None:
    """quart-schema builds a pydantic TypeAdapter (a schema build) for every request body
    and every JSON response it converts; the adapter of a type never changes, so keep it."""
    build = conversion.TypeAdapter  # type: ignore[attr-defined]
    if not isinstance(build, _CachedTypeAdapter):
        conversion.TypeAdapter = _CachedTypeAdapter(build)  # type: ignore[attr-defined,assignment]


class _CachedTypeAdapter:
    def __init__(self, build: Callable[[Any], Any]) -> None:
        self._build = functools.lru_cache(maxsize=512)(build)
        self._uncached = build

    def __call__(self, kind: Any) -> Any:
        try:
            return self._build(kind)
        except TypeError:  # an unhashable type: build it each time, as quart-schema does
            return self._uncached(kind)


def _digits_up_to(maximum: int) -> str:
    """A regex of the decimal numbers from 0 to `maximum` (leading zeros within its length)."""
    digits = str(maximum)
    shorter = [f"[0-9]{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    below = [
        digits[:i]
        + f"[0-{int(d) - 1}]"
        + (f"[0-9]{{{len(digits) - i - 1}}}" if i + 1 < len(digits) else "")
        for i, d in enumerate(digits)
        if d != "0"
    ]
    return "(?:" + "|".join([*shorter, *below, digits]) + ")"


class _IdConverter(IntegerConverter):
    """`<int:id>`: ASCII digits within an INT column's range, so `/x/<2**70>` is a 404
    rather than a query that overflows; `<bigint:id>` for BIGINT columns.

    The range is in the regex, not only in `max`: werkzeug checks a rule's methods before
    its converters, so on a path several methods serve (GET, PATCH, DELETE) an id that only
    `max` refused was a 405 naming the other methods instead of a 404."""

    regex = _digits_up_to(validation.INT_MAX)
    maximum = validation.INT_MAX

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", self.maximum)
        super().__init__(map, *args, **kwargs)


class _BigIdConverter(_IdConverter):
    regex = _digits_up_to(validation.BIGINT_MAX)
    maximum = validation.BIGINT_MAX


class _SigningOnceSessions(SecureCookieSessionInterface):
    """Quart builds the cookie signer anew on every request, API calls included (a twentieth
    of a trivial request's CPU): build it once per secret."""

    _signer: tuple[tuple[Any, ...], URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Quart) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if self._signer is None or self._signer[0] != keys:
            self._signer = (keys, super().get_signing_serializer(app))
        return self._signer[1]


def _init_lifecycle(app: Quart, config: Config) -> None:
    reconciliation = ReconcileJob(
        interval=config.reconcile_seconds or 0,
        clients=app.extensions[PSP_CLIENTS_KEY],
        broker=app.extensions[BROKER_KEY],
        metrics=app.extensions[METRICS_KEY],
    )
    expiry_job = ExpiryJob(broker=app.extensions[BROKER_KEY])

    delivery: DeliveryWorker | None = None

    @app.before_serving
    async def open_resources() -> None:
        nonlocal delivery
        await db.open_database(config.database_url)
        if config.auto_migrate:
            await db.apply_migrations(config.database_url)
        if config.reconcile_seconds:
            reconciliation.start()
        if not config.testing:  # a test runs its passes itself (services.expiry.sweep)
            expiry_job.start()
        if config.deliver_webhooks:
            delivery = _delivery_worker(app, config)
            delivery.start()

    @app.after_serving
    async def close_resources() -> None:
        await reconciliation.stop()
        await expiry_job.stop()
        if delivery is not None:
            await delivery.stop()
        await app.extensions[PSP_CLIENTS_KEY].aclose()
        await app.extensions[BROKER_KEY].close()
        await db.close_database()


def _delivery_worker(app: Quart, config: Config) -> DeliveryWorker:
    """The merchant-webhook delivery worker of this process (built when serving starts:
    its HTTP client belongs to the serving loop)."""
    sender = Sender(
        policy=UrlPolicy(require_https=config.production, allow_private=config.allow_private_urls),
        timeout=config.webhook_timeout_seconds,
    )
    # The API-shaped body when presenters has it (services cannot import presenters).
    body_of = getattr(presenters, "webhook_body", event_body)
    return DeliveryWorker(
        sender=sender,
        encryption_key=config.encryption_key,
        broker=app.extensions[BROKER_KEY],
        metrics=app.extensions[METRICS_KEY],
        body_of=body_of,
    )
