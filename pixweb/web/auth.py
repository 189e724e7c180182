"""Login, logout and sign-up pages: a session cookie, CSRF on every form, attempts throttled
(per address and per account, shared with the API: see throttle.py)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, redirect, render_template, request, session, url_for
from quart_schema import hide
from werkzeug.wrappers import Response as WerkzeugResponse

from pixweb import throttle
from pixweb.deps import (
    SESSION_MERCHANT,
    SESSION_VERSION,
    check_csrf,
    get_psp_clients,
    session_merchant,
)
from pixweb.errors import AuthenticationError, PixwebError, RateLimitedError
from pixweb.models import Merchant
from pixweb.presenters import public_base
from pixweb.services import merchants, psp_sandbox
from pixweb.web.forms import messages_for

blueprint = Blueprint("web_auth", __name__)
blueprint.before_request(check_csrf)

REGISTER_FIELDS = ("name", "email", "password", "city", "pix_key")
Page = tuple[str, int] | tuple[str, int, dict[str, str]]


async def _refused(template: str, error: RateLimitedError, form: dict[str, Any]) -> Page:
    """The form again, 429, saying how long to wait."""
    wait = f"{error.retry_after} segundo" + ("" if error.retry_after == 1 else "s")
    message = f"Muitas tentativas. Aguarde {wait} e tente de novo."
    page = await render_template(template, errors={"": message}, form=form)
    return page, 429, {"Retry-After": str(error.retry_after)}


def _start_session(merchant: Merchant) -> WerkzeugResponse:
    session.clear()  # a fresh session (and CSRF token) on login: no fixation
    session[SESSION_MERCHANT] = merchant.id
    session[SESSION_VERSION] = merchant.session_version
    session.permanent = True
    return redirect(url_for("web_dashboard.dashboard"))


@blueprint.get("/login")
@hide
async def login_page() -> str | WerkzeugResponse:
    """The login form (or the dashboard, for who is logged in)."""
    if await session_merchant() is not None:
        return redirect(url_for("web_dashboard.dashboard"))
    return await render_template("pages/login.html", errors={}, form={})


@blueprint.post("/login")
@hide
async def login() -> Page | WerkzeugResponse:
    """Check e-mail and password; one message for every failure."""
    form = await request.form
    email = form.get("email", "")
    try:
        await throttle.count_attempt(email)
        merchant = await merchants.authenticate(email, form.get("password", ""))
    except RateLimitedError as error:
        return await _refused("pages/login.html", error, {"email": email})
    except AuthenticationError:
        page = await render_template(
            "pages/login.html",
            errors={"": "E-mail ou senha inválidos."},
            form={"email": email},
        )
        return page, 422
    return _start_session(merchant)


@blueprint.post("/logout")
@hide
async def logout() -> WerkzeugResponse:
    """End this session and every copy of it (all of this merchant's sessions)."""
    if (merchant := await session_merchant()) is not None:
        await merchants.end_sessions(merchant)
    session.clear()
    return redirect(url_for("web_auth.login_page"))


@blueprint.get("/register")
@hide
async def register_page() -> str:
    """The sign-up form."""
    return await render_template("pages/register.html", errors={}, form={})


@blueprint.post("/register")
@hide
async def register() -> Page | WerkzeugResponse:
    """Create the merchant and log it in."""
    form = {name: (await request.form).get(name, "") for name in REGISTER_FIELDS}
    shown = {k: v for k, v in form.items() if k != "password"}
    try:
        await throttle.count_attempt()
        merchant = await merchants.register_merchant(**form)
    except RateLimitedError as error:
        return await _refused("pages/register.html", error, shown)
    except PixwebError as error:
        page = await render_template("pages/register.html", errors=messages_for(error), form=shown)
        return page, 422
    await psp_sandbox.connect_new_merchant(
        merchant, clients=get_psp_clients(), public_base=public_base()
    )
    return _start_session(merchant)
