"""Addresses pixweb's server calls because a merchant chose them (a PSP's API, later the
merchant's own webhooks): the scheme and where the host resolves.

A merchant who could point pixweb at `http://169.254.169.254/` or `https://10.0.0.5/` would
make pixweb's server reach what only it can reach (cloud metadata, the database, internal
admin pages: server-side request forgery). `check_url` refuses, unless `allow_private`:
- plain http where https is required (production);
- a host that resolves to any address outside the public internet: loopback, private,
  carrier-grade NAT, link-local (cloud metadata), multicast, reserved, documentation ranges,
  and the same hidden inside IPv6 (IPv4-mapped, NAT64, 6to4). Every address the name
  resolves to must be public, through the event loop's resolver, so `0x7f.1` or a name
  pointing at 127.0.0.1 fare as 127.0.0.1 does.

The check holds when it runs: a name can resolve elsewhere later (DNS rebinding). A PSP is
reached over mTLS, whose server certificate an internal host cannot present for the name;
a caller without that protection connects to the addresses `check_url` returns.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from pixweb.errors import InvalidInputError, UnsafeUrlError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_SECONDS = 5.0


def _nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Named, not only `is_global`: Python's tables differ across versions (3.11 calls
# 192.0.0.192, ::127.0.0.1 and multicast "global").
_REFUSED_V4 = {
    "this network": _nets("0.0.0.0/8"),
    "private": _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
    "carrier-grade NAT (shared)": _nets("100.64.0.0/10"),
    "loopback": _nets("127.0.0.0/8"),
    "link-local (cloud metadata)": _nets("169.254.0.0/16"),
    "IETF protocol assignments (cloud metadata)": _nets("192.0.0.0/24"),
    "documentation": _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"),
    "6to4 relay": _nets("192.88.99.0/24"),
    "benchmarking": _nets("198.18.0.0/15"),
    "multicast": _nets("224.0.0.0/4"),
    "reserved": _nets("240.0.0.0/4"),
    "cloud metadata": _nets("168.63.129.16/32"),  # Azure's WireServer: a public address
}
_REFUSED_V6 = {
    "unspecified": _nets("::/128"),
    "loopback": _nets("::1/128"),
    "IPv4-compatible (deprecated)": _nets("::/96"),
    "discard-only": _nets("100::/64"),
    "local-use NAT64": _nets("64:ff9b:1::/48"),
    "IETF protocol assignments": _nets("2001::/23"),
    "documentation": _nets("2001:db8::/32", "3fff::/20"),
    "segment routing": _nets("5f00::/16"),
    "unique local (private, cloud metadata)": _nets("fc00::/7"),
    "link-local": _nets("fe80::/10"),
    "site-local (deprecated)": _nets("fec0::/10"),
    "multicast": _nets("ff00::/8"),
}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def refusal(address: IPAddress) -> str | None:
    """Why pixweb must not call `address` ("loopback", "private"...), or None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal(embedded)
            return f"{inner}, inside an IPv6 address" if inner else None
        table: dict[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = _REFUSED_V6
    else:
        table = _REFUSED_V4
    for name, networks in table.items():
        if any(address in network for network in networks):
            return name
    if not address.is_global or address.is_multicast or address.is_reserved:
        return "not a public internet address"
    return None


@dataclass(frozen=True)
class UrlPolicy:
    """What `check_url` demands: https (production), public addresses unless allowed
    (PIXWEB_ALLOW_PRIVATE_URLS: on-premises gateways, tests)."""

    require_https: bool = True
    allow_private: bool = False


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # a zone (fe80::1%eth0) aside
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal is itself), via the event loop."""
    literal = _parse_ip(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(RESOLVE_SECONDS):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = [_parse_ip(str(info[4][0])) for info in infos]
    return list(dict.fromkeys(a for a in found if a is not None))


def _refuse(field: str, message: str) -> UnsafeUrlError:
    return UnsafeUrlError(f"{field} {message}", fields={field: message})


def check_syntax(url: str, policy: UrlPolicy, *, field: str = "url") -> tuple[str, int]:
    """The host and port of `url`, once it is http(s) with a host (https under
    `require_https`), without credentials or fragment. Nothing is resolved."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidInputError(
            f"{field} is not a URL", fields={field: "is not a URL with a valid host and port"}
        ) from None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        message = "must be an https URL such as https://api.psp.example/v2"
        raise InvalidInputError(f"{field} {message}", fields={field: message})
    if parts.username is not None or parts.password is not None or parts.fragment:
        message = "must not carry credentials (user:password@) or a fragment (#)"
        raise InvalidInputError(f"{field} {message}", fields={field: message})
    if policy.require_https and parts.scheme != "https":
        raise _refuse(field, "must be https (plain http is refused in production)")
    return host, port or (443 if parts.scheme == "https" else 80)


async def check_url(url: str, policy: UrlPolicy, *, field: str = "url") -> list[IPAddress]:
    """Refuse `url` unless it passes `check_syntax` and every address its host resolves to
    is public (unless `allow_private`). Return the addresses checked (none when private ones
    are allowed: nothing was resolved)."""
    host, port = check_syntax(url, policy, field=field)
    if policy.allow_private:
        return []
    try:
        addresses = await resolve(host, port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise _refuse(field, f"has a host that does not resolve ({host}: {reason})") from None
    if not addresses:
        raise _refuse(field, f"has a host that does not resolve ({host})")
    for address in addresses:
        why = refusal(address)
        if why is not None:
            shown = host if _parse_ip(host) else f"{host} resolves to {address}"
            raise _refuse(
                field,
                f"points to a non-public address ({shown}: {why}): pixweb only calls addresses "
                "on the public internet unless PIXWEB_ALLOW_PRIVATE_URLS=1",
            )
    return addresses
