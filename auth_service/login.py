"""Login methods: password (with lockout), TOTP and recovery codes, SMS codes, certificates.

Levels (``acr``): a password alone is ``1``; a password plus a one-time code (TOTP, recovery code or
SMS), or a certificate from our CA, is ``2``. ``amr`` values are RFC 8176's: ``pwd``, ``otp``,
``sms``, ``mfa``, ``swk`` (proof of possession of a key: TLS client authentication).

No user enumeration: every failure reads the same, a login name that matches nobody still costs one
Argon2id verification, and lockout is tracked for unknown names exactly as for real accounts.
Lockout back-off is exponential per account (after 5 failures: 1, 2, 4 … 60 minutes) and per client
address (after 20). The counters live in the database (shared by every worker) and are written in
their own transaction, so a failed login is counted even though its request fails.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyotp
from sqlalchemy import select
from sqlalchemy.orm import Session

from auth_service import passwords, timestamps
from auth_service.models import Credential, RecoveryCode, SmsCode, Throttle
from core.errors import Kind, Problem
from core.ratelimit import Rule
from core.ratelimit import hit as rate_hit
from core.runtime import Runtime
from core.security import Actor
from identity import service as identity

ACCOUNT_FREE_FAILURES = 5
IP_FREE_FAILURES = 20
OTP_FREE_FAILURES = 5
MAX_LOCK_SECONDS = 3600
FAILURE_MEMORY_HOURS = 1
TOTP_ISSUER = "eAuth"
RECOVERY_CODES = 10
SMS_CODE_SECONDS = 300
SMS_MAX_ATTEMPTS = 5
SMS_PER_MINUTE = Rule("sso_sms", limit=1, window=60)
SMS_PER_HOUR = Rule("sso_sms_hour", limit=5, window=3600)
SMS_PER_IP = Rule("sso_sms_ip", limit=20, window=3600)
CTX_TOTP = "sso.totp"
CTX_LOGIN = "sso.login"


class LoginFailed(Exception):
    """A login attempt that did not succeed. ``reason`` is internal (audit); users see one message."""

    def __init__(self, reason: str, *, locked_seconds: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.locked_seconds = locked_seconds


@dataclass(frozen=True)
class FirstFactor:
    person_id: str
    has_totp: bool
    has_phone: bool


# -- throttling ------------------------------------------------------------------------------------


def _lock_seconds(failures: int, free: int) -> int:
    if failures < free:
        return 0
    return min(60 * 2 ** (failures - free), MAX_LOCK_SECONDS)


def locked_for(rt: Runtime, *keys: str, counted: set[str] | None = None, db: Session | None = None) -> int:
    """Seconds until the longest lock among ``keys`` ends (0: not locked). ``counted`` receives
    the keys that have failures on record (only those need clearing after a success). ``db``: a
    session of the caller's to read in (a login reads the account and its locks together)."""
    now = timestamps.now()
    if db is None:
        with rt.db.read() as db:
            rows = db.execute(select(Throttle).where(Throttle.key.in_(keys))).scalars().all()
    else:
        rows = db.execute(select(Throttle).where(Throttle.key.in_(keys))).scalars().all()
    if counted is not None:
        counted.update(r.key for r in rows if r.failures or r.locked_until)
    longest = 0
    for row in rows:
        if row.locked_until:
            left = (timestamps.parse(row.locked_until) - now).total_seconds()
            longest = max(longest, int(left) + 1 if left > 0 else 0)
    return longest


def record_failure(rt: Runtime, actor: Actor, *, keys: dict[str, int], target: str, method: str, reason: str) -> int:
    """Count a failure against each ``key`` (with its free allowance) and audit it; returns the
    lock imposed (seconds, 0 if none). Its own transaction: it must outlive the failing request."""
    now_dt = timestamps.now()
    now = timestamps.stamp(now_dt)
    forget_before = timestamps.stamp(now_dt, hours=-FAILURE_MEMORY_HOURS)
    imposed = 0
    with rt.db.transaction() as db:
        for key, free in keys.items():
            row = db.execute(select(Throttle).where(Throttle.key == key).with_for_update()).scalar_one_or_none()
            if row is None:
                row = Throttle(key=key, failures=0, updated_at=now)
                db.add(row)
            elif row.updated_at < forget_before and not (row.locked_until and row.locked_until > now):
                row.failures = 0
            row.failures += 1
            row.updated_at = now
            seconds = _lock_seconds(row.failures, free)
            if seconds:
                row.locked_until = timestamps.stamp(now_dt, seconds=seconds)
                imposed = max(imposed, seconds)
                rt.audit.record(
                    db, actor=actor, action="sso.login.lockout", target=target, outcome="failure",
                    details={"scope": key.split(":", 1)[0], "failures": row.failures, "seconds": seconds, "method": method},
                )
            db.flush()
        rt.audit.record(db, actor=actor, action="sso.login.failure", target=target, outcome="failure", details={"method": method, "reason": reason})
    return imposed


def clear_failures(db: Session, key: str) -> None:
    row = db.get(Throttle, key)
    if row is not None:
        row.failures, row.locked_until = 0, None


def account_key(rt: Runtime, person_id: str | None, login: str) -> str:
    if person_id:
        return f"acct:{person_id}"
    return "acct:?" + rt.vault.blind_index(login.strip().lower(), context=CTX_LOGIN)[:40]


# -- password --------------------------------------------------------------------------------------


def check_password(rt: Runtime, *, login: str, password: str, ip: str) -> FirstFactor:
    """First factor. Raises :class:`LoginFailed` (uniform to the user) on any failure."""
    login = (login or "").strip()
    if not login or len(login) > 254 or len(password) > passwords.MAX_LENGTH * 4:
        raise LoginFailed("malformed")
    on_record: set[str] = set()
    ip_key = f"ip:{ip}"
    with rt.db.read() as db:  # one read session: the account, its credential and the locks
        person = identity.find_person_by_login(rt, db, login)
        cred = db.get(Credential, person.id) if person else None
        stored = cred.password_hash if cred else None
        has_totp = bool(cred and cred.totp_confirmed)
        has_phone = bool(person and person.phone_masked)
        acct = account_key(rt, person.id if person else None, login)
        locked = locked_for(rt, acct, ip_key, counted=on_record, db=db)
    target = f"person:{person.id}" if person else "login:unknown"
    actor = Actor.anonymous(ip)
    if locked:
        with rt.db.transaction() as db:
            rt.audit.record(db, actor=actor, action="sso.login.refused", target=target, outcome="failure", details={"method": "pwd", "reason": "locked"})
        raise LoginFailed("locked", locked_seconds=locked)
    ok = passwords.verify_password(stored, password)
    if not ok:
        reason = "no_such_account" if person is None else ("no_password" if stored is None else "bad_password")
        imposed = record_failure(rt, actor, keys={acct: ACCOUNT_FREE_FAILURES, ip_key: IP_FREE_FAILURES}, target=target, method="pwd", reason=reason)
        raise LoginFailed(reason, locked_seconds=imposed)
    assert person is not None and stored is not None
    rehash = passwords.needs_rehash(stored)
    if acct in on_record or rehash:  # most logins have nothing to clear: no write transaction
        with rt.db.transaction() as db:
            clear_failures(db, acct)
            if rehash:
                row = db.get(Credential, person.id)
                if row is not None:
                    row.password_hash = passwords.hash_password(password)
    return FirstFactor(person.id, has_totp, has_phone)


def change_password(rt: Runtime, db: Session, actor: Actor, *, person_id: str, current: str, new: str) -> None:
    from auth_service.service import set_password

    cred = db.get(Credential, person_id)
    if not passwords.verify_password(cred.password_hash if cred else None, current):
        raise Problem(Kind.FORBIDDEN, "sso.wrong_password", "the current password is not correct")
    set_password(rt, db, actor, person_id=person_id, password=new)


# -- TOTP (RFC 6238) and recovery codes ---------------------------------------------------------------


def begin_totp_enrolment(rt: Runtime, db: Session, *, person_id: str, account_name: str) -> tuple[str, str]:
    """A new unconfirmed TOTP seed; returns ``(base32 secret, otpauth:// URI)`` for the QR code."""
    secret = pyotp.random_base32(32)  # 160 bits (RFC 4226 §4 recommends ≥ 128, 160 preferred)
    now = timestamps.stamp()
    cred = db.get(Credential, person_id)
    if cred is None:
        cred = Credential(person_id=person_id, totp_confirmed=False, updated_at=now)
        db.add(cred)
    if cred.totp_confirmed:
        raise Problem(Kind.CONFLICT, "sso.totp_already_enrolled", "an authenticator app is already set up; remove it first")
    cred.totp_secret_ct = rt.vault.encrypt(secret, context=CTX_TOTP)
    cred.totp_last_step = None
    cred.updated_at = now
    db.flush()
    uri = pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=TOTP_ISSUER)
    return secret, uri


def qr_png(text: str) -> bytes:
    import qrcode

    out = io.BytesIO()
    qrcode.make(text, box_size=6, border=2).save(out, format="PNG")  # Pillow (a dependency)
    return out.getvalue()


def _totp_step_ok(rt: Runtime, cred: Credential, code: str) -> bool:
    if not cred.totp_secret_ct or not code.isdigit() or len(code) != 6:
        return False
    totp = pyotp.TOTP(rt.vault.decrypt(cred.totp_secret_ct, context=CTX_TOTP))
    now = timestamps.epoch()
    for offset in (0, -1, 1):  # RFC 6238 §5.2: one step of drift either way
        at = now + offset * totp.interval
        step = at // totp.interval
        if hmac.compare_digest(totp.at(at), code):
            if cred.totp_last_step is not None and step <= cred.totp_last_step:
                return False  # replayed code (§5.2: a code is valid once)
            cred.totp_last_step = step
            return True
    return False


def _new_recovery_codes(db: Session, person_id: str) -> list[str]:
    db.execute(RecoveryCode.__table__.delete().where(RecoveryCode.person_id == person_id))
    codes = []
    now = timestamps.stamp()
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)
        code = f"{raw[:5]}-{raw[5:]}"
        codes.append(code)
        db.add(RecoveryCode(code_hash=_recovery_hash(person_id, code), person_id=person_id, created_at=now))
    db.flush()
    return codes


def _recovery_hash(person_id: str, code: str) -> str:
    return hashlib.sha256(f"{person_id}\x00{code.strip().lower().replace(' ', '')}".encode()).hexdigest()


def confirm_totp(rt: Runtime, db: Session, actor: Actor, *, person_id: str, code: str) -> list[str]:
    """Confirm enrolment with a first code; returns fresh recovery codes (shown once)."""
    cred = db.get(Credential, person_id)
    if cred is None or cred.totp_confirmed or not cred.totp_secret_ct:
        raise Problem(Kind.CONFLICT, "sso.totp_not_pending", "start setting up an authenticator app first")
    if not _totp_step_ok(rt, cred, code.strip()):
        raise Problem(Kind.VALIDATION, "sso.totp_wrong_code", "the code is not correct; check the time on your phone")
    cred.totp_confirmed = True
    cred.updated_at = timestamps.stamp()
    codes = _new_recovery_codes(db, person_id)
    rt.audit.record(db, actor=actor, action="sso.totp.enrol", target=f"person:{person_id}")
    return codes


def regenerate_recovery_codes(rt: Runtime, db: Session, actor: Actor, *, person_id: str) -> list[str]:
    cred = db.get(Credential, person_id)
    if cred is None or not cred.totp_confirmed:
        raise Problem(Kind.CONFLICT, "sso.totp_not_enrolled", "set up an authenticator app first")
    codes = _new_recovery_codes(db, person_id)
    rt.audit.record(db, actor=actor, action="sso.recovery_codes.regenerate", target=f"person:{person_id}")
    return codes


def remove_totp(rt: Runtime, db: Session, actor: Actor, *, person_id: str, password: str) -> None:
    cred = db.get(Credential, person_id)
    if not passwords.verify_password(cred.password_hash if cred else None, password):
        raise Problem(Kind.FORBIDDEN, "sso.wrong_password", "the current password is not correct")
    assert cred is not None
    cred.totp_secret_ct, cred.totp_confirmed, cred.totp_last_step = None, False, None
    cred.updated_at = timestamps.stamp()
    db.execute(RecoveryCode.__table__.delete().where(RecoveryCode.person_id == person_id))
    rt.audit.record(db, actor=actor, action="sso.totp.remove", target=f"person:{person_id}")


def totp_status(db: Session, person_id: str) -> tuple[bool, int]:
    """(enrolled, unused recovery codes)."""
    cred = db.get(Credential, person_id)
    left = len(db.execute(select(RecoveryCode.code_hash).where(RecoveryCode.person_id == person_id, RecoveryCode.used_at.is_(None))).all())
    return bool(cred and cred.totp_confirmed), left


def check_second_factor(rt: Runtime, *, person_id: str, code: str, method: str, ip: str) -> list[str]:
    """Verify a TOTP, recovery or SMS code for ``person_id``; returns the ``amr`` values it adds."""
    code = (code or "").strip().replace(" ", "")
    otp_key = f"otp:{person_id}"
    actor = Actor.anonymous(ip)
    target = f"person:{person_id}"
    locked = locked_for(rt, otp_key, f"ip:{ip}")
    if locked:
        raise LoginFailed("locked", locked_seconds=locked)
    ok = False
    amr: list[str] = []
    if len(code) <= 20:
        with rt.db.transaction() as db:
            if method == "totp":
                cred = db.execute(select(Credential).where(Credential.person_id == person_id).with_for_update()).scalar_one_or_none()
                ok = bool(cred and cred.totp_confirmed and _totp_step_ok(rt, cred, code))
                amr = ["otp"]
            elif method == "recovery":
                row = db.execute(
                    select(RecoveryCode).where(RecoveryCode.code_hash == _recovery_hash(person_id, code), RecoveryCode.used_at.is_(None)).with_for_update()
                ).scalar_one_or_none()
                if row is not None and row.person_id == person_id:
                    row.used_at = timestamps.stamp()
                    ok = True
                    rt.audit.record(db, actor=actor, action="sso.recovery_code.use", target=target)
                amr = ["otp"]
            elif method == "sms":
                ok = _check_sms(rt, db, person_id, code)
                amr = ["sms"]
            if ok:
                clear_failures(db, otp_key)
    if not ok:
        imposed = record_failure(rt, actor, keys={otp_key: OTP_FREE_FAILURES, f"ip:{ip}": IP_FREE_FAILURES}, target=target, method=method, reason="bad_code")
        raise LoginFailed("bad_code", locked_seconds=imposed)
    return [*amr, "mfa"]


# -- SMS --------------------------------------------------------------------------------------------


class SmsSender(Protocol):
    def send(self, *, phone: str, text: str, person_id: str) -> None: ...


class OutboxSmsSender:
    """The embedded default: one JSON file per message under ``$EAUTH_HOME/outbox/sms`` (0600).
    A deployment plugs in its SMS gateway with :func:`set_sms_sender`; tests read the outbox."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, *, phone: str, text: str, person_id: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{timestamps.now():%Y%m%dT%H%M%S}-{secrets.token_hex(4)}.json"
        fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"to": phone, "text": text, "person_id": person_id, "at": timestamps.stamp()}, fh, ensure_ascii=False)


def set_sms_sender(rt: Runtime, sender: SmsSender) -> None:
    rt.extensions["auth_service.sms_sender"] = sender


def sms_sender(rt: Runtime) -> SmsSender:
    found = rt.extensions.get("auth_service.sms_sender")
    if found is None:
        found = rt.extensions.setdefault("auth_service.sms_sender", OutboxSmsSender(rt.settings.outbox_dir / "sms"))
    return found


def _sms_hash(rt: Runtime, sms_id: str, code: str) -> str:
    # Keyed: six digits are trivially brute-forced from a plain hash.
    return rt.vault.blind_index(f"{sms_id}:{code}", context="sso.sms")


def send_sms_code(rt: Runtime, *, person_id: str, ip: str) -> str:
    """Send a 6-digit code to the person's registered phone; returns the masked number."""
    rate_hit(rt, SMS_PER_MINUTE, person_id)
    rate_hit(rt, SMS_PER_HOUR, person_id)
    rate_hit(rt, SMS_PER_IP, ip)
    with rt.db.transaction() as db:
        person = identity.person_secrets(rt, db, person_id)
        if not person.phone:
            raise Problem(Kind.CONFLICT, "sso.no_phone", "no phone number is registered for this account")
        code = f"{secrets.randbelow(10**6):06d}"
        sms_id = secrets.token_hex(16)
        db.add(
            SmsCode(
                id=sms_id, person_id=person_id, code_hash=_sms_hash(rt, sms_id, code), created_at=timestamps.stamp(),
                expires_at=timestamps.stamp(seconds=SMS_CODE_SECONDS), attempts=0,
            )
        )
        rt.audit.record(db, actor=Actor.anonymous(ip), action="sso.sms.send", target=f"person:{person_id}", details={"phone": person.phone})
        sms_sender(rt).send(phone=person.phone, text=f"【eAuth】您的登录验证码为 {code}，5 分钟内有效。Your eAuth login code is {code}.", person_id=person_id)
    from core.pii import mask_phone

    return mask_phone(person.phone)


def _check_sms(rt: Runtime, db: Session, person_id: str, code: str) -> bool:
    now = timestamps.stamp()
    row = db.execute(
        select(SmsCode)
        .where(SmsCode.person_id == person_id, SmsCode.used_at.is_(None), SmsCode.expires_at > now)
        .order_by(SmsCode.created_at.desc())
        .limit(1)
        .with_for_update()
    ).scalar_one_or_none()
    if row is None or row.attempts >= SMS_MAX_ATTEMPTS:
        return False
    row.attempts += 1
    if not code.isdigit() or not hmac.compare_digest(row.code_hash, _sms_hash(rt, row.id, code)):
        return False
    row.used_at = now
    return True
