"""Who is asking, and how often: the client's address behind trusted proxies, and the
throttle of login and sign-up attempts that the API and the pages share (see ratelimit.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import cast

from quart import Quart, current_app, request

from pixweb.config import Config, IPNetwork
from pixweb.deps import get_config
from pixweb.ratelimit import AuthThrottle, make_store

THROTTLE_KEY = "pixweb.throttle"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def init_app(app: Quart, config: Config) -> None:
    """Give the app its throttle (Redis buckets when the broker is Redis), closed at the end."""
    throttle = AuthThrottle(make_store(config.broker_url), config.auth_rate_limit)
    app.extensions[THROTTLE_KEY] = throttle
    app.after_serving(throttle.close)


def _ip(text: str) -> IPAddress | None:
    text = text.strip()
    host = text
    if text.startswith("["):  # [v6]:port
        host = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # v4:port
        host = text.partition(":")[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def forwarded_client(peer: str, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The client's address: the peer, unless it is a trusted proxy; then the right-most
    X-Forwarded-For hop that is not a trusted proxy (hops further left are whatever the
    client wrote, so they never count)."""
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    address, ip = peer, _ip(peer)
    while ip is not None and hops and any(ip in network for network in trusted):
        hop = _ip(hops.pop())
        if hop is None:  # not an address where a trusted proxy wrote one: stop at that proxy
            break
        address, ip = str(hop), hop
    return address


def client_address() -> str:
    """The address of the request's client (see `forwarded_client`)."""
    trusted = get_config().trusted_proxies
    peer = request.remote_addr or ""
    if not trusted:
        return peer
    return forwarded_client(peer, request.headers.getlist("X-Forwarded-For"), trusted)


async def count_attempt(email: str | None = None) -> None:
    """Count a login (with the e-mail tried) or sign-up attempt from this request's client;
    raise RateLimitedError when its address or the account has made too many."""
    throttle = cast(AuthThrottle, current_app.extensions[THROTTLE_KEY])
    await throttle.attempt(client_address(), email)
