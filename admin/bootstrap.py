"""What `eauth init` does for this package (idempotent).

1. Register the console as a first-party OIDC client of ``auth_service`` (admin.console_client).
2. Create the first administrator once, with one-time credentials written to
   ``$EAUTH_HOME/secrets/bootstrap-admin.txt`` (mode 0600, never logged): a login (a placeholder
   resident ID number in the reserved 999999 region), a random password and a single-use code
   that passes the console's second step (acr 2). On first sign-in the console lets them do one
   thing only — enrol their own authenticator app and choose a new password (``/admin/enrol``)
   — which retires all three.

The single-use code is an ``auth_service`` recovery code. Recovery codes come with an
authenticator enrolment, so init enrols one whose secret is thrown away at once; the real one
replaces it at first sign-in.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin import console_client
from admin.models import BootstrapAdmin
from core import clock
from core.runtime import Runtime
from core.security import Actor, Role

CREDENTIALS_FILE = "bootstrap-admin.txt"
ADMIN_NAME = "系统管理员"
ADMIN_ROLES = frozenset({Role.CA_ADMIN.value, Role.AUDITOR.value})
RESERVED_REGION = "999999"  # not an administrative division (GB/T 2260): never a real citizen


def credentials_path(rt: Runtime) -> Path:
    return rt.settings.secrets_dir / CREDENTIALS_FILE


def _placeholder_id_number() -> str:
    from identity.numbers import id_check_digit

    body = f"{RESERVED_REGION}19700101{secrets.randbelow(1000):03d}"
    return body + id_check_digit(body)


def _password() -> str:
    # 20 characters from an unambiguous alphabet: ~115 bits.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(20))


def _write_credentials(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def create_first_admin(rt: Runtime, actor: Actor) -> Path | None:
    """Create the first administrator unless one exists; returns the credentials file written.

    Until that administrator has enrolled their own second factor, every ``eauth init`` issues
    fresh one-time credentials (replacing a lost file or an abandoned enrolment)."""
    from identity import service as identity

    with rt.db.transaction() as db:
        boot = db.execute(select(BootstrapAdmin)).scalars().first()
        if boot is not None and boot.enrolled_at is not None:
            return None
        if boot is None:
            if any(Role.CA_ADMIN.value in op.roles and op.active for op in identity.list_operators(db)):
                return None  # an existing installation already has an administrator
            id_number = _placeholder_id_number()
            person = identity.register_person(rt, db, actor, name=ADMIN_NAME, id_number=id_number)
            identity.set_operator(rt, db, actor, person_id=person.id, roles=set(ADMIN_ROLES))
            db.add(BootstrapAdmin(person_id=person.id, created_at=clock.now().astimezone(UTC).isoformat(timespec="seconds")))
            rt.audit.record(db, actor=actor, action="admin.bootstrap.create", target=f"person:{person.id}", details={"roles": sorted(ADMIN_ROLES)})
            person_id = person.id
        else:
            person_id = boot.person_id
            id_number = identity.person_secrets(rt, db, person_id).id_number
        password, code = _one_time_credentials(rt, db, actor, person_id)
        rt.audit.record(db, actor=actor, action="admin.bootstrap.credentials", target=f"person:{person_id}", details={"file": CREDENTIALS_FILE})
        path = credentials_path(rt)
        _write_credentials(path, _credentials_text(rt, id_number, password, code))
    return path


def _one_time_credentials(rt: Runtime, db: Session, actor: Actor, person_id: str) -> tuple[str, str]:
    """A fresh random password and one recovery code (see the module docstring)."""
    import pyotp

    from auth_service import login
    from auth_service import service as sso

    password = _password()
    sso.set_password(rt, db, actor, person_id=person_id, password=password)
    login.remove_totp(rt, db, actor, person_id=person_id, password=password)  # any earlier one-time code
    secret, _uri = login.begin_totp_enrolment(rt, db, person_id=person_id, account_name="bootstrap")
    codes = login.confirm_totp(rt, db, actor, person_id=person_id, code=pyotp.TOTP(secret).now())
    return password, codes[0]


def _credentials_text(rt: Runtime, login_name: str, password: str, code: str) -> str:
    return "\n".join(
        [
            "eAuth — first administrator, one-time credentials / 首个管理员一次性凭据",
            f"console / 控制台:               {rt.settings.public_url}/admin",
            f"login / 登录名:                 {login_name}",
            f"one-time password / 一次性密码: {password}",
            f"one-time code / 一次性验证码:   {code}",
            "",
            "At the second step choose “recovery code” and enter the one-time code.",
            "The first sign-in makes you set up an authenticator app and a new password;",
            "these credentials then stop working and this file is deleted.",
            "第二步选择“恢复码”并输入一次性验证码。首次登录须绑定身份验证器并设置新密码，之后本凭据失效，本文件被删除。",
            "",
        ]
    )


def initialise(rt: Runtime, actor: Actor) -> list[str]:
    """Register the console with the SSO and create the first administrator once."""
    lines = []
    with rt.db.transaction() as db:
        reg, created = console_client.ensure_registered(rt, db, actor)
    if created:
        lines.append(f"console registered with the sign-in service as client {reg.client_id}")
    path = create_first_admin(rt, actor)
    if path is not None:
        lines.append(f"first administrator's one-time credentials: {path} (mode 0600)")
    return lines
