"""netguard: the URLs pixweb's server calls because a merchant chose them."""

from __future__ import annotations

import ipaddress

import pytest

from pixweb.errors import InvalidInputError, UnsafeUrlError
from pixweb.netguard import UrlPolicy, check_url, refusal

STRICT = UrlPolicy(require_https=True, allow_private=False)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("0.0.0.0", "this network"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.100.100.200", "carrier-grade NAT"),  # Alibaba Cloud's metadata
        ("169.254.169.254", "cloud metadata"),  # AWS, GCP, Azure, OpenStack metadata
        ("192.0.0.192", "cloud metadata"),  # Oracle Cloud's metadata
        ("168.63.129.16", "cloud metadata"),  # Azure's WireServer: a public address
        ("192.0.2.10", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "unique local"),  # AWS's IPv6 metadata
        ("fc00::1", "unique local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("::ffff:127.0.0.1", "loopback, inside an IPv6 address"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata), inside an IPv6 address"),
        ("::ffff:10.0.0.1", "private, inside an IPv6 address"),
        ("64:ff9b::a9fe:a9fe", "link-local (cloud metadata), inside an IPv6 address"),
        ("64:ff9b::7f00:1", "loopback, inside an IPv6 address"),
        ("2002:7f00:1::1", "loopback, inside an IPv6 address"),  # 6to4
        ("2002:c0a8:101::1", "private, inside an IPv6 address"),
        ("64:ff9b:1::1", "local-use NAT64"),
    ],
)
def test_non_public_addresses_are_refused_by_name(address: str, why: str) -> None:
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None and why in reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "200.160.2.3", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


async def test_a_public_https_url_passes_and_says_what_was_checked() -> None:
    assert await check_url("https://8.8.8.8/api/v2", STRICT) == [ipaddress.ip_address("8.8.8.8")]
    assert await check_url("https://[2606:4700::1111]:8443/v2", STRICT, field="base_url")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1:8443/v2", "127.0.0.1: loopback"),
        ("https://[::1]/", "::1: loopback"),
        ("https://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("https://10.0.0.5/", "private"),
        # Names are resolved: what they point to counts, however written.
        ("https://localhost:8443/", "localhost resolves to 127.0.0.1: loopback"),
        ("https://0x7f.1/", "resolves to 127.0.0.1: loopback"),
        ("https://2130706433/", "resolves to 127.0.0.1: loopback"),
    ],
)
async def test_private_loopback_and_metadata_addresses_are_refused(url: str, why: str) -> None:
    with pytest.raises(UnsafeUrlError) as refused:
        await check_url(url, STRICT, field="base_url")
    assert why in refused.value.detail
    assert "PIXWEB_ALLOW_PRIVATE_URLS=1" in refused.value.detail
    assert refused.value.fields is not None and "base_url" in refused.value.fields
    assert refused.value.code == "url_refused"


async def test_allowing_private_addresses_resolves_nothing() -> None:
    allowed = UrlPolicy(require_https=True, allow_private=True)
    assert await check_url("https://127.0.0.1:8443/v2", allowed) == []
    assert await check_url("https://nothing.invalid/", allowed) == []
    with pytest.raises(UnsafeUrlError, match="must be https"):
        await check_url("http://127.0.0.1/", allowed)


async def test_http_is_refused_where_https_is_required_and_allowed_elsewhere() -> None:
    with pytest.raises(UnsafeUrlError, match="must be https"):
        await check_url("http://8.8.8.8/", STRICT)
    development = UrlPolicy(require_https=False, allow_private=False)
    assert await check_url("http://8.8.8.8/", development)
    with pytest.raises(UnsafeUrlError, match="loopback"):
        await check_url("http://127.0.0.1/", development)


async def test_a_host_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(UnsafeUrlError, match=r"does not resolve \(nothing\.invalid"):
        await check_url("https://nothing.invalid/v2", STRICT)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("psp.example.com", "must be an https URL"),
        ("ftp://8.8.8.8/", "must be an https URL"),
        ("https://", "must be an https URL"),
        ("https://8.8.8.8:99999/", "is not a URL"),
        ("https://user:pw@8.8.8.8/", "credentials"),
        ("https://8.8.8.8/#x", "fragment"),
    ],
)
async def test_what_is_not_a_usable_url_is_a_400_naming_the_field(url: str, why: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        await check_url(url, STRICT, field="token_url")
    assert not isinstance(refused.value, UnsafeUrlError)
    assert why in refused.value.detail and refused.value.fields is not None
    assert "token_url" in refused.value.fields
