from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import Kind, Problem
from core.settings import load_settings


def test_defaults_and_derived(tmp_path: Path) -> None:
    s = load_settings({"EAUTH_HOME": str(tmp_path)})
    assert s.db_url == f"sqlite:///{(tmp_path / 'eauth.db').resolve()}"
    assert s.public_url == "http://127.0.0.1:8000"


def test_postgres_url_is_normalised_to_psycopg3(tmp_path: Path) -> None:
    s = load_settings({"EAUTH_HOME": str(tmp_path), "EAUTH_DATABASE_URL": "postgresql://u@h/db"})
    assert s.db_url == "postgresql+psycopg://u@h/db"


def test_unknown_environment_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(Problem) as info:
        load_settings({"EAUTH_HOME": str(tmp_path), "EAUTH_DATABSE_URL": "sqlite://"})
    assert info.value.kind is Kind.INVALID_CONFIG and info.value.code == "config.unknown_key"
    assert info.value.fields == [{"name": "EAUTH_DATABSE_URL", "reason": "unknown setting"}]


def test_unknown_toml_key_and_bad_values_are_errors(tmp_path: Path) -> None:
    (tmp_path / "eauth.toml").write_text('public_url = "http://x"\ncolour = "red"\n')
    with pytest.raises(Problem) as info:
        load_settings({"EAUTH_HOME": str(tmp_path)})
    assert info.value.code == "config.invalid" and "colour" in info.value.detail
    (tmp_path / "eauth.toml").write_text('public_url = "ftp://x"\nhsm_pool_size = 0\n')
    with pytest.raises(Problem) as info:
        load_settings({"EAUTH_HOME": str(tmp_path)})
    names = {f["name"] for f in info.value.fields}
    assert names == {"public_url", "hsm_pool_size"}
    (tmp_path / "eauth.toml").write_text("this is = = not toml")
    with pytest.raises(Problem) as info:
        load_settings({"EAUTH_HOME": str(tmp_path)})
    assert info.value.code == "config.toml_syntax"


def test_environment_overrides_toml_and_secrets_are_never_shown(tmp_path: Path) -> None:
    (tmp_path / "eauth.toml").write_text('public_url = "https://from-toml.example"\n')
    s = load_settings({"EAUTH_HOME": str(tmp_path), "EAUTH_PUBLIC_URL": "https://env.example/", "EAUTH_TOKEN_PIN": "s3cret-pin"})
    assert s.public_url == "https://env.example"
    assert "s3cret-pin" not in repr(s) and "s3cret-pin" not in str(s.redacted())
    assert s.redacted()["token_pin"] == "***"


def test_list_settings_from_environment(tmp_path: Path) -> None:
    s = load_settings({"EAUTH_HOME": str(tmp_path), "EAUTH_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1/32"})
    assert s.trusted_proxies == ["10.0.0.0/8", "127.0.0.1/32"]
    with pytest.raises(Problem):
        load_settings({"EAUTH_HOME": str(tmp_path), "EAUTH_TRUSTED_PROXIES": "not-a-network"})
