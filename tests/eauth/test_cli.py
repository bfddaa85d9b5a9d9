"""The real CLI in a subprocess, on a brand-new home: init, identity commands, backup → restore."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from tests.factories import unique_id_number, unique_uscc

pytestmark = pytest.mark.slow


def test_init_is_idempotent_and_writes_secrets_0600(cli_home) -> None:  # type: ignore[no-untyped-def]
    cli_home.run("init")
    cli_home.run("init")
    for name in ("token-pin", "token-so-pin"):
        mode = stat.S_IMODE(os.stat(cli_home.home / "secrets" / name).st_mode)
        assert mode == 0o600
    verify = json.loads(cli_home.run("--json", "audit", "verify").stdout)
    assert verify["ok"]


def test_bad_input_exits_non_zero_with_one_line(cli_home) -> None:  # type: ignore[no-untyped-def]
    cli_home.run("init")
    done = cli_home.run("person", "add", "--name", "x", "--id-number", "110105194912310021", check=False)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "identity.invalid_id_number" in done.stderr and "Traceback" not in done.stderr
    done = cli_home.run("org", "add", "--name", "x", "--uscc", "bad", check=False)
    assert done.returncode == 2 and "identity.invalid_uscc" in done.stderr


def test_wrong_pin_and_malformed_settings_are_clear(cli_home) -> None:  # type: ignore[no-untyped-def]
    cli_home.run("init")
    done = cli_home.run("audit", "verify", check=False, env={"EAUTH_TOKEN_PIN": "wrong"})
    assert done.returncode == 7 and "hsm.wrong_pin" in done.stderr and "Traceback" not in done.stderr
    done = cli_home.run("audit", "verify", check=False, env={"EAUTH_PUBLIK_URL": "x"})
    assert done.returncode != 0 and "config.unknown_key" in done.stderr


def test_backup_restore_into_empty_home_then_audit_verifies(cli_home, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli_home.run("init")
    idn = unique_id_number()
    cli_home.run("person", "add", "--name", "周九", "--id-number", idn, "--phone", "13600000009")
    cli_home.run("org", "add", "--name", "测试局", "--uscc", unique_uscc(), "--type", "government")
    cli_home.run("backup", str(tmp_path / "bk"))
    # tampering is refused
    tampered = tmp_path / "bk-tampered"
    shutil.copytree(tmp_path / "bk", tampered)
    (tampered / "eauth.db").write_bytes((tampered / "eauth.db").read_bytes()[:-1] + b"\x01")
    new_home = tmp_path / "new-home"
    done = cli_home.run("restore", str(tampered), check=False, env={"EAUTH_HOME": str(new_home)})
    assert done.returncode != 0 and "backup.tampered" in done.stderr
    # the genuine backup restores into an empty home, and the restored platform works
    done = cli_home.run("restore", str(tmp_path / "bk"), env={"EAUTH_HOME": str(new_home)})
    assert "audit chain OK" in done.stdout
    env = {"EAUTH_HOME": str(new_home)}
    assert json.loads(cli_home.run("--json", "audit", "verify", env=env).stdout)["ok"]
    shown = json.loads(cli_home.run("--json", "person", "show", idn, env=env).stdout)
    assert shown["name"] == "周九"
    # restoring over an installation is refused
    done = cli_home.run("restore", str(tmp_path / "bk"), check=False, env=env)
    assert done.returncode == 5 and "restore.home_not_empty" in done.stderr
