import secrets
from pathlib import Path

import pytest

from pixweb.app import create_app
from pixweb.config import ConfigError, load_config

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
    }
    config = load_config(environ=environ)
    assert (config.secret_key, config.webhook_secret) == (STRONG, STRONG_WEBHOOK)


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
    settings = {"env": "production", "secret_key": STRONG, "webhook_secret": STRONG_WEBHOOK}
    with pytest.raises(ConfigError) as refused:
        load_config({**settings, name: weak}, environ={})
    message = str(refused.value)
    assert message.startswith(f"PIXWEB_{name.upper()} is too weak for production: ")
    assert why in message and role in message and "token_urlsafe(32)" in message
    assert len(weak) < 4 or weak not in message  # never echo the secret itself


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
