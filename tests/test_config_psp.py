"""Settings of the PSP connections: PIXWEB_ENCRYPTION_KEY and PIXWEB_ALLOW_PRIVATE_URLS."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pixweb import crypto
from pixweb.app import create_app
from pixweb.config import ConfigError, load_config
from tests.support import PRODUCTION

WITHOUT_KEY = {k: v for k, v in PRODUCTION.items() if k != "encryption_key"}


def test_production_refuses_to_start_without_an_encryption_key() -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(WITHOUT_KEY, environ={})
    message = str(refused.value)
    assert message.startswith("production needs PIXWEB_ENCRYPTION_KEY")
    assert "PSP client secrets and private keys" in message
    assert "generate_key()" in message
    with pytest.raises(ConfigError, match="PIXWEB_ENCRYPTION_KEY"):
        create_app(WITHOUT_KEY)


def test_production_takes_the_key_from_the_environment_and_keeps_it_out_of_repr() -> None:
    key = crypto.generate_key()
    config = load_config(WITHOUT_KEY, environ={"PIXWEB_ENCRYPTION_KEY": f" {key}\n"})
    assert config.encryption_key == key
    assert key not in repr(config)


@pytest.mark.parametrize(
    "bad",
    ["short", "x" * 44, "B7hnaGHdD5dcNbXDNOD-SXpwuBcJO8A5CItX-trmnd", "é" * 44],
)
def test_a_malformed_key_is_refused_with_how_to_make_one(bad: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config({**PRODUCTION, "encryption_key": bad}, environ={})
    message = str(refused.value)
    assert "PIXWEB_ENCRYPTION_KEY must be 32 random bytes" in message
    assert "generate_key()" in message
    assert bad not in message


def test_development_generates_the_key_once_into_instance(tmp_path: Path) -> None:
    first = load_config({"instance_path": str(tmp_path)}, environ={})
    second = load_config({"instance_path": str(tmp_path)}, environ={})
    assert first.encryption_key == second.encryption_key
    assert len(crypto.parse_key(first.encryption_key)) == 32
    path = tmp_path / "encryption_key"
    assert path.read_text() == first.encryption_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_development_names_a_damaged_key_file(tmp_path: Path) -> None:
    (tmp_path / "encryption_key").write_text("not a key")
    with pytest.raises(ConfigError) as refused:
        load_config({"instance_path": str(tmp_path)}, environ={})
    assert "32 random bytes" in str(refused.value)
    assert str(tmp_path / "encryption_key") in str(refused.value)


def test_development_keeps_a_key_it_was_given(tmp_path: Path) -> None:
    key = crypto.generate_key()
    config = load_config({"instance_path": str(tmp_path), "encryption_key": key}, environ={})
    assert config.encryption_key == key
    assert not (tmp_path / "encryption_key").exists()


def test_tests_get_a_fresh_valid_key_without_touching_instance(tmp_path: Path) -> None:
    config = load_config({"testing": True, "instance_path": str(tmp_path)}, environ={})
    assert len(crypto.parse_key(config.encryption_key)) == 32
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("raw", "allowed"),
    [("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False), ("false", False)],
)
def test_allow_private_urls_reads_booleans(raw: str, allowed: bool) -> None:
    environ = {"PIXWEB_ALLOW_PRIVATE_URLS": raw}
    assert load_config({"testing": True}, environ).allow_private_urls is allowed
    assert load_config({"testing": True}, environ={}).allow_private_urls is False


def test_allow_private_urls_refuses_what_is_not_a_boolean() -> None:
    with pytest.raises(ConfigError, match="PIXWEB_ALLOW_PRIVATE_URLS must be 1 or 0"):
        load_config({"testing": True}, {"PIXWEB_ALLOW_PRIVATE_URLS": "sometimes"})
