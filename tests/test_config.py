from pathlib import Path

import pytest

from pixweb.app import create_app
from pixweb.config import ConfigError, load_config


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
        load_config({"env": "production", "secret_key": "s" * 32}, environ={})


def test_production_with_explicit_secrets_starts() -> None:
    environ = {"PIXWEB_ENV": "production", "PIXWEB_SECRET_KEY": "a", "PIXWEB_WEBHOOK_SECRET": "b"}
    config = load_config(environ=environ)
    assert (config.secret_key, config.webhook_secret) == ("a", "b")


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
