import secrets
from pathlib import Path

import pytest

from pixweb.app import create_app
from pixweb.config import ConfigError, load_config
from tests.support import PRODUCTION

STRONG = secrets.token_urlsafe(32)
STRONG_WEBHOOK = secrets.token_hex(32)


def test_environment_overrides_defaults_and_overrides_win() -> None:
    environ = {"PIXWEB_BROKER_URL": "memory://env", "PIXWEB_TOKEN_TTL_SECONDS": "60"}
    config = load_config({"broker_url": "memory://override", "testing": True}, environ)
    assert config.broker_url == "memory://override"
    assert config.token_ttl_seconds == 60
    assert config.database_url == "sqlite://instance/pixweb.sqlite3"


def test_production_refuses_to_start_without_secrets() -> None:
    with pytest.raises(ConfigError, match="PIXWEB_SECRET_KEY, PIXWEB_WEBHOOK_SECRET"):
        create_app({"env": "production"})
    with pytest.raises(ConfigError, match="PIXWEB_WEBHOOK_SECRET"):
        load_config({"env": "production", "secret_key": STRONG}, environ={})


def test_production_with_explicit_secrets_starts() -> None:
    environ = {
        "PIXWEB_ENV": "production",
        "PIXWEB_SECRET_KEY": STRONG,
        "PIXWEB_WEBHOOK_SECRET": STRONG_WEBHOOK,
        "PIXWEB_PUBLIC_URL": "https://pix.example.com/",
        "PIXWEB_ENCRYPTION_KEY": PRODUCTION["encryption_key"],
    }
    config = load_config(environ=environ)
    assert (config.secret_key, config.webhook_secret) == (STRONG, STRONG_WEBHOOK)
    assert config.public_url == "https://pix.example.com"
    assert STRONG not in repr(config) and STRONG_WEBHOOK not in repr(config)


@pytest.mark.parametrize(
    ("weak", "why"),
    [
        ("a", "it is 1 character long; at least 32"),
        ("s" * 32, "repeats the same 1 character"),
        ("0123456789abcdef" * 2, "repeats the same 16 character"),
        ("ab" * 15 + "abc", "too few distinct characters"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "too few distinct characters"),
        ("correct horse", "it is 13 characters long"),
    ],
)
@pytest.mark.parametrize(
    ("name", "role"),
    [("secret_key", "logs in as any merchant"), ("webhook_secret", "marks charges as paid")],
)
def test_production_refuses_weak_secrets_and_says_why(
    weak: str, why: str, name: str, role: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config({**PRODUCTION, name: weak}, environ={})
    message = str(refused.value)
    assert message.startswith(f"PIXWEB_{name.upper()} is too weak for production: ")
    assert why in message and role in message and "token_urlsafe(32)" in message
    assert len(weak) < 4 or weak not in message  # never echo the secret itself


def test_production_requires_a_public_url_and_says_what_it_is_for() -> None:
    settings = {k: v for k, v in PRODUCTION.items() if k != "public_url"}
    with pytest.raises(ConfigError, match="production needs PIXWEB_PUBLIC_URL") as refused:
        load_config(settings, environ={})
    assert "Host header" in str(refused.value)
    with pytest.raises(ConfigError, match="PIXWEB_PUBLIC_URL"):
        create_app(settings)


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://pix.example.com", "https://pix.example.com"),
        ("https://pix.example.com:8443/", "https://pix.example.com:8443"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://localhost:8000/", "http://localhost:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("https://[2001:db8::1]", "https://[2001:db8::1]"),
    ],
)
def test_production_accepts_https_or_loopback_http(url: str, kept: str) -> None:
    assert load_config({**PRODUCTION, "public_url": url}, environ={}).public_url == kept


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://pix.example.com", "production needs https"),
        ("http://10.0.0.5:8000", "production needs https"),
        ("http://localhost.evil.example", "production needs https"),
        ("pix.example.com", "http(s) address"),
        ("ftp://pix.example.com", "http(s) address"),
        ("https://", "http(s) address"),
        ("https://pix.example.com/pixweb", "without credentials, path or query"),
        ("https://pix.example.com/?a=1", "without credentials, path or query"),
        ("https://user:pw@pix.example.com", "without credentials, path or query"),
        ("https://pix.example.com:99999", "valid host and port"),
        ("https://pix.example.com:port", "valid host and port"),
        ("https://pix_example!.com", "is not a host name"),
    ],
)
def test_production_refuses_a_bad_public_url_and_says_why(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match="PIXWEB_PUBLIC_URL") as refused:
        load_config({**PRODUCTION, "public_url": url}, environ={})
    assert why in str(refused.value)


def test_development_accepts_a_plain_http_public_url_from_the_environment() -> None:
    environ = {"PIXWEB_PUBLIC_URL": "http://192.168.0.10:5000/"}
    assert load_config({"testing": True}, environ).public_url == "http://192.168.0.10:5000"
    with pytest.raises(ConfigError, match="path"):
        load_config({"testing": True, "public_url": "http://192.168.0.10:5000/x"}, environ={})


def test_development_keeps_a_short_secret_it_was_given(tmp_path: Path) -> None:
    config = load_config({"instance_path": str(tmp_path), "secret_key": "dev"}, environ={})
    assert config.secret_key == "dev"


def test_development_generates_secrets_once_and_keeps_them(tmp_path: Path) -> None:
    first = load_config({"instance_path": str(tmp_path)}, environ={})
    second = load_config({"instance_path": str(tmp_path)}, environ={})
    assert first.secret_key and first.webhook_secret
    assert first.secret_key != first.webhook_secret
    assert (second.secret_key, second.webhook_secret) == (first.secret_key, first.webhook_secret)
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("overrides", "environ", "message"),
    [
        ({"env": "staging"}, {}, "PIXWEB_ENV"),
        ({"no_such_setting": 1}, {}, "unknown setting"),
        ({}, {"PIXWEB_TOKEN_TTL_SECONDS": "soon"}, "integer"),
    ],
)
def test_bad_configuration_is_refused(overrides: dict, environ: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"testing": True, **overrides}, environ)
