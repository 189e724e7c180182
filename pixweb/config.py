"""Configuration: defaults < PIXWEB_* environment < explicit overrides.

Also builds the Tortoise ORM config shared by the app, `pixweb migrate` and the
`tortoise` command line (`tortoise -c pixweb.config.TORTOISE_ORM makemigrations`).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pixweb import crypto
from pixweb.errors import EncryptionError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ENVIRONMENTS = ("development", "production")
MIGRATIONS_MODULE = "migrations"
# Development without PIXWEB_PUBLIC_URL, asked from a non-loopback Host: `pixweb run`'s address.
DEVELOPMENT_PUBLIC_URL = "http://127.0.0.1:5000"


class ConfigError(Exception):
    """The configuration is unusable: the process must not start."""


@dataclass(frozen=True)
class Config:
    """Every setting pixweb reads, with the embedded defaults."""

    env: str = "development"
    database_url: str = "sqlite://instance/pixweb.sqlite3"
    # Kept out of repr: a logged or printed Config must not carry them.
    secret_key: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)
    # Encrypts merchants' PSP client secrets and private keys at rest (pixweb.crypto).
    encryption_key: str = field(default="", repr=False)
    broker_url: str = "memory://"
    # Where payers and PSPs reach pixweb (scheme://host[:port]): every absolute link is built
    # from it, never from the request's Host header, which the client chooses.
    public_url: str = ""
    # Proxies whose X-Forwarded-For is believed (IPs or CIDRs); from anyone else the peer's
    # own address is the client's, whatever the header says.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Who may deliver PSP webhooks (IPs or CIDRs; the client as trusted_proxies tell it):
    # empty, anyone holding a merchant's webhook token.
    webhook_allow_ips: tuple[IPNetwork, ...] = ()
    # Let merchants point pixweb at loopback, private or link-local addresses (an on-premises
    # PSP gateway, tests): off, such URLs are refused (pixweb.netguard).
    allow_private_urls: bool = False
    # Login and sign-up attempts per minute per client address, and per ten minutes per
    # account tried (0: no limit, for load tests).
    auth_rate_limit: int = 10
    instance_path: str = "instance"
    token_ttl_seconds: int = 3600
    testing: bool = False
    # Seconds between reconciliation passes in the server (pixweb.services.reconcile); 0
    # disables the job. Unset: 300, but 0 under `testing` (a test asks for the job).
    reconcile_seconds: int | None = None
    # Run the merchant-webhook delivery worker in the server (pixweb.services.delivery).
    # Unset: on, but off under `testing` (a test asks for it).
    deliver_webhooks: bool | None = None
    # Seconds one webhook POST may take, connection to last byte read.
    webhook_timeout_seconds: float = 10.0
    # Apply migrations when serving starts (tests with in-memory SQLite need it).
    auto_migrate: bool = False
    # Extra keys handed to Quart's app.config (tests use it for flags like TESTING).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.env == "production"


_ENV_PREFIX = "PIXWEB_"
# Each secret setting and what it protects (said when production refuses a weak one).
_SECRET_SETTINGS = {
    "secret_key": "it signs session cookies and bearer tokens: whoever guesses it logs in as"
    " any merchant",
    "webhook_secret": "it signs the bank's payment confirmations: whoever guesses it marks"
    " charges as paid",
}
MIN_SECRET_CHARS = 32
# The entropy estimated from the characters' frequencies flatters structured text (it cannot
# see words), so it only keeps out the plainly weak: a 32-character hex token estimates
# ~115 bits, `token_urlsafe(32)` ~205, "abcd" * 8 64.
MIN_SECRET_BITS = 80
SECRET_HINT = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
ENCRYPTION_KEY_HINT = 'python -c "from pixweb.crypto import generate_key; print(generate_key())"'
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEANS |= {"0": False, "false": False, "no": False, "off": False, "": False}


def load_config(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Merge defaults, the PIXWEB_* environment and overrides; fill or refuse secrets."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Config):
        raw = environ.get(_ENV_PREFIX + f.name.upper())
        if raw is not None and f.name != "extra":
            values[f.name] = _coerce(f.name, raw)
    for key, value in (overrides or {}).items():
        name = key.lower()
        if name not in {f.name for f in fields(Config)}:
            raise ConfigError(f"unknown setting {key!r}")
        values[name] = value
    values["trusted_proxies"] = _networks(values.get("trusted_proxies", ()))
    allow = values.get("webhook_allow_ips", ())
    values["webhook_allow_ips"] = _networks(allow, "PIXWEB_WEBHOOK_ALLOW_IPS")
    config = Config(**values)
    if config.auth_rate_limit < 0:
        raise ConfigError("PIXWEB_AUTH_RATE_LIMIT must be 0 (no limit) or more")
    if config.reconcile_seconds is None:
        config = replace(config, reconcile_seconds=0 if config.testing else 300)
    elif config.reconcile_seconds < 0:
        raise ConfigError("PIXWEB_RECONCILE_SECONDS must be 0 (no job) or more")
    if config.deliver_webhooks is None:
        config = replace(config, deliver_webhooks=not config.testing)
    if not 0 < config.webhook_timeout_seconds <= 60:
        raise ConfigError("PIXWEB_WEBHOOK_TIMEOUT_SECONDS must be more than 0 and at most 60")
    if config.env not in ENVIRONMENTS:
        raise ConfigError(
            f"PIXWEB_ENV must be one of {', '.join(ENVIRONMENTS)}, not {config.env!r}"
        )
    return _with_public_url(_with_encryption_key(_with_secrets(config)))


def _networks(
    given: str | Iterable[str | IPNetwork], setting: str = "PIXWEB_TRUSTED_PROXIES"
) -> tuple[IPNetwork, ...]:
    """Parse IPs or CIDRs, separated by commas or spaces (`setting` names them in errors)."""
    items = given.replace(",", " ").split() if isinstance(given, str) else given
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(
                f"{setting}: {str(item)!r} is not an IP address or CIDR network"
            ) from exc
    return tuple(networks)


def _coerce(name: str, raw: str) -> Any:
    if name in {"token_ttl_seconds", "auth_rate_limit", "reconcile_seconds"}:
        try:
            return int(raw)
        except ValueError as exc:
            raise ConfigError(f"PIXWEB_{name.upper()} must be an integer") from exc
    if name == "webhook_timeout_seconds":
        try:
            return float(raw)
        except ValueError as exc:
            raise ConfigError(f"PIXWEB_{name.upper()} must be a number") from exc
    if name in {"testing", "auto_migrate", "allow_private_urls", "deliver_webhooks"}:
        if raw.strip().lower() not in _BOOLEANS:
            raise ConfigError(f"PIXWEB_{name.upper()} must be 1 or 0 (true/false), not {raw!r}")
        return _BOOLEANS[raw.strip().lower()]
    return raw


def secret_weakness(value: str) -> str | None:
    """Say why `value` is too weak to be a production secret, or None when it is not."""
    if len(value) < MIN_SECRET_CHARS:
        size = f"{len(value)} character" + ("" if len(value) == 1 else "s")
        return f"it is {size} long; at least {MIN_SECRET_CHARS} random characters are needed"
    for unit in range(1, len(value) // 2 + 1):
        if value == (value[:unit] * (len(value) // unit + 1))[: len(value)]:
            return f"it repeats the same {unit} character(s) over and over"
    counts = Counter(value).values()
    bits = -sum(n * math.log2(n / len(value)) for n in counts)
    if bits < MIN_SECRET_BITS:
        return f"it has too few distinct characters (about {bits:.0f} bits of entropy)"
    return None


def _check_secrets(config: Config) -> None:
    """Refuse, in production, a secret an attacker could guess, saying why it matters."""
    for name in _SECRET_SETTINGS:
        weakness = secret_weakness(getattr(config, name))
        if weakness is not None:
            raise ConfigError(
                f"{_ENV_PREFIX}{name.upper()} is too weak for production: {weakness}."
                f" It must be hard to guess because {_SECRET_SETTINGS[name]}."
                f" Generate one with: {SECRET_HINT}"
            )


def _with_secrets(config: Config) -> Config:
    """Refuse missing or weak secrets in production; in development keep generated ones in
    instance/."""
    missing = [name for name in _SECRET_SETTINGS if not getattr(config, name)]
    if config.production:
        if missing:
            names = ", ".join(_ENV_PREFIX + name.upper() for name in missing)
            raise ConfigError(f"production needs explicit secrets: set {names} ({SECRET_HINT})")
        _check_secrets(config)
        return config
    if not missing:
        return config
    if config.testing:
        fresh: dict[str, Any] = {name: secrets.token_urlsafe(32) for name in missing}
        return replace(config, **fresh)
    generated: dict[str, Any] = {
        name: _instance_secret(config, name, secrets.token_urlsafe) for name in missing
    }
    return replace(config, **generated)


def _instance_secret(config: Config, name: str, make: Callable[[int], str]) -> str:
    """Development's secret `name`, generated once into instance/ (0600) and kept."""
    folder = Path(config.instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists():
        path.write_text(make(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _with_encryption_key(config: Config) -> Config:
    """Check PIXWEB_ENCRYPTION_KEY (required in production); development generates one into
    instance/encryption_key, tests a fresh one per app."""
    key = config.encryption_key.strip()
    source = ""
    if not key:
        if config.production:
            raise ConfigError(
                "production needs PIXWEB_ENCRYPTION_KEY: it encrypts the merchants' PSP client"
                " secrets and private keys at rest. Generate one with: "
                f"{ENCRYPTION_KEY_HINT}, and keep it as safe as the database backups: without"
                " it the stored PSP credentials cannot be read back (merchants would have to"
                " connect their PSP again)"
            )
        if config.testing:
            return replace(config, encryption_key=crypto.generate_key())
        key = _instance_secret(config, "encryption_key", lambda _: crypto.generate_key())
        source = f" (read from {Path(config.instance_path) / 'encryption_key'})"
    try:
        crypto.parse_key(key)
    except EncryptionError as exc:
        raise ConfigError(exc.detail + source) from None
    return replace(config, encryption_key=key)


_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?")


def is_loopback_host(host: str) -> bool:
    """Whether a host name or IP literal (no port; IPv6 with or without brackets) is this
    machine: `localhost`, 127.0.0.0/8 or ::1."""
    host = host.removeprefix("[").removesuffix("]").lower()
    if host.rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _public_url_problem(url: str, production: bool) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a malformed port raises)
    except ValueError:
        return "it is not a URL with a valid host and port"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it must be an http(s) address such as https://pix.example.com"
    host = parts.hostname
    if not (_HOST_NAME.fullmatch(host) or _is_ip(host)):
        return f"{host!r} is not a host name"
    if parts.username is not None or parts.path not in ("", "/") or parts.query or parts.fragment:
        return "it must be only scheme://host[:port], without credentials, path or query"
    if production and parts.scheme != "https" and not is_loopback_host(host):
        return "production needs https (plain http is accepted only for loopback hosts)"
    return None


def _with_public_url(config: Config) -> Config:
    """Validate PIXWEB_PUBLIC_URL (required in production) and drop its trailing slash."""
    url = config.public_url.strip()
    if not url:
        if config.production:
            raise ConfigError(
                "production needs PIXWEB_PUBLIC_URL, the https address where payers and PSPs"
                " reach pixweb (e.g. https://pix.example.com): payment links and QR codes are"
                " built from it, never from the request's Host header"
            )
        return config
    problem = _public_url_problem(url, config.production)
    if problem is not None:
        raise ConfigError(f"PIXWEB_PUBLIC_URL {url!r} is refused: {problem}")
    return replace(config, public_url=url.rstrip("/"))


# SQLite: WAL (readers never wait for the writer), one fsync per commit (FULL: a committed
# payment survives a power cut), and a writer waits for another up to 10 s (twice sqlite3's
# own default) instead of failing. A URL's own query parameters win.
SQLITE_PRAGMAS = {"journal_mode": "WAL", "synchronous": "FULL", "busy_timeout": "10000"}


def _with_sqlite_pragmas(database_url: str) -> str:
    if not database_url.startswith("sqlite://") or ":memory:" in database_url:
        return database_url
    path, _, query = database_url.partition("?")
    given = {part.partition("=")[0] for part in query.split("&") if part}
    extra = [f"{name}={value}" for name, value in SQLITE_PRAGMAS.items() if name not in given]
    return path + "?" + "&".join(filter(None, [query, *extra]))


def tortoise_config(database_url: str) -> dict[str, Any]:
    """Return the Tortoise ORM config for one database URL."""
    return {
        "connections": {"default": _with_sqlite_pragmas(database_url)},
        "apps": {
            "models": {
                "models": ["pixweb.models"],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def __getattr__(name: str) -> Any:
    # Lazy, so that importing this module reads no environment (for the tortoise CLI).
    if name == "TORTOISE_ORM":
        return tortoise_config(os.environ.get("PIXWEB_DATABASE_URL", Config.database_url))
    raise AttributeError(name)
