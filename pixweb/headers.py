"""Security headers on every HTTP response: Content-Security-Policy, framing, sniffing, referrer,
and HSTS in production.

The pages satisfy a strict policy: scripts and styles come only from this origin's files (no
inline script, style element or style attribute, no eval: htmx runs with `allowEval`,
`allowScriptTags` and `includeIndicatorStyles` off, see templates/base.html). The Swagger UI at
`/docs` (quart-schema's template) starts with one inline script: its response gets the same
policy plus that script's hash, so no other page loosens.
"""

from __future__ import annotations

import base64
import hashlib
import re

from quart import Quart, Response, request

# CSP Level 3: 'self' also matches ws:// and wss:// of the page's own host and port, which is
# all the sockets need (tests/e2e/test_csp.py checks it in Chromium).
POLICY: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",  # data: for the empty favicon ("data:,")
    "connect-src": "'self'",
    "form-action": "'self'",
    "base-uri": "'none'",
    "object-src": "'none'",
    "frame-ancestors": "'none'",
}
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP 2
    # Full URLs only to this origin: a payer page's URL is its capability, never sent elsewhere.
    # ("no-referrer" would also make browsers send `Origin: null` on same-origin form posts.)
    "Referrer-Policy": "same-origin",
}
# Two years, the preload list's recommendation; subdomains are the deployment's own hosts.
HSTS = "max-age=63072000; includeSubDomains"
SWAGGER_ENDPOINT = "swagger_ui"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def content_security_policy(extra_scripts: tuple[str, ...] = ()) -> str:
    """The policy as a header value, allowing `extra_scripts` sources besides 'self'."""
    directives = dict(POLICY)
    if extra_scripts:
        directives["script-src"] = " ".join(("'self'", *extra_scripts))
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def script_hashes(html: bytes) -> tuple[str, ...]:
    """CSP hash sources of the inline scripts in `html`."""
    return tuple(
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )


def init_app(app: Quart, *, production: bool) -> None:
    """Add the security headers to every response; HSTS only when `production`."""
    page_policy = content_security_policy()

    @app.after_request
    async def add_security_headers(response: Response) -> Response:
        policy = page_policy
        if request.endpoint == SWAGGER_ENDPOINT:
            policy = content_security_policy(script_hashes(await response.get_data(as_text=False)))
        response.headers.setdefault("Content-Security-Policy", policy)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if production:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response
