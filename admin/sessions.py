"""Server-side console sessions and pending logins.

The browser holds only random values; the database stores their SHA-256. A session id is minted
fresh when a login *completes* (never taken from the browser), so a planted cookie cannot be
promoted to an authenticated session (session fixation, OWASP ASVS V3.2.1). Roles are read from
the operator record on every request, so withdrawing a role takes effect at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from admin.models import BootstrapAdmin, ConsoleSession, LoginState
from core import clock
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Actor, Role

LOGIN_STATE_MINUTES = 10
TOUCH_SECONDS = 60
MIN_ACR = "2"  # certificate, or password + one-time code


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ConsoleUser:
    """A signed-in operator as the console sees them on this request."""

    person_id: str
    display: str
    roles: frozenset[str]
    department_id: str | None
    csrf_token: str
    acr: str
    session_hash: str
    id_token: str | None = None
    must_enrol: bool = False  # the first administrator, before enrolling their own second factor

    @property
    def actor(self) -> Actor:
        return Actor("operator", self.person_id, self.display)

    def has_role(self, role: Role | str) -> bool:
        return (role.value if isinstance(role, Role) else role) in self.roles

    def has_any(self, *roles: Role) -> bool:
        return any(self.has_role(r) for r in roles)


@dataclass(frozen=True)
class PendingLogin:
    nonce: str
    code_verifier: str
    return_to: str


def begin_login(db: Session, *, browser_secret: str, nonce: str, code_verifier: str, return_to: str) -> str:
    """Remember a login in progress; returns the ``state`` to send to the provider."""
    now = clock.now()
    db.execute(delete(LoginState).where(LoginState.expires_at < _iso(now)))
    state = secrets.token_urlsafe(32)
    db.add(
        LoginState(
            state_hash=_hash(state),
            browser_hash=_hash(browser_secret),
            nonce=nonce,
            code_verifier=code_verifier,
            return_to=return_to,
            expires_at=_iso(now + timedelta(minutes=LOGIN_STATE_MINUTES)),
        )
    )
    return state


def finish_login(db: Session, *, state: str, browser_secret: str | None) -> PendingLogin:
    """Redeem a ``state`` once; it must come back to the browser that started the login (login CSRF)."""
    row = db.get(LoginState, _hash(state)) if state and len(state) < 200 else None
    if row is None:
        raise Problem(Kind.UNAUTHENTICATED, "console.unknown_state", "this sign-in link has expired or was already used; sign in again")
    db.delete(row)
    db.flush()
    if not browser_secret or not secrets.compare_digest(row.browser_hash, _hash(browser_secret)):
        raise Problem(Kind.UNAUTHENTICATED, "console.state_mismatch", "this sign-in was started in another browser; sign in again")
    if row.expires_at < _iso(clock.now()):
        raise Problem(Kind.UNAUTHENTICATED, "console.unknown_state", "this sign-in link has expired; sign in again")
    return PendingLogin(row.nonce, row.code_verifier, row.return_to)


def operator_for(db: Session, person_id: str) -> tuple[str, frozenset[str], str | None]:
    """(display name, roles, department) of an active operator; 403 for anyone else."""
    from identity import service as identity

    op = identity.get_operator(db, person_id)
    if op is None or not op.active or not op.roles:
        raise Problem(Kind.FORBIDDEN, "console.not_an_operator", "this account has no console roles")
    return identity.get_person(db, person_id).name, op.roles, op.department_id


def open_session(
    rt: Runtime, db: Session, *, person_id: str, acr: str, sso_sid: str | None = None, id_token: str | None = None, amr: tuple[str, ...] = ()
) -> str:
    """Start a console session for an operator who authenticated at ``acr``; returns the cookie value."""
    if acr < MIN_ACR:
        raise Problem(Kind.FORBIDDEN, "console.insufficient_acr", "the console needs a certificate or a password with a one-time code")
    display, roles, _dept = operator_for(db, person_id)
    now = clock.now()
    s = rt.settings
    expires = min(now + timedelta(hours=s.session_absolute_hours), now + timedelta(minutes=s.session_idle_minutes))
    value = secrets.token_urlsafe(32)
    db.add(
        ConsoleSession(
            id_hash=_hash(value),
            person_id=person_id,
            display=display,
            csrf_token=secrets.token_urlsafe(32),
            acr=acr,
            sso_sid=sso_sid,
            id_token=id_token,
            created_at=_iso(now),
            last_seen_at=_iso(now),
            expires_at=_iso(expires),
        )
    )
    db.flush()
    rt.audit.record(
        db,
        actor=Actor("operator", person_id, display),
        action="admin.console.login",
        target=f"person:{person_id}",
        details={"acr": acr, "amr": list(amr), "roles": sorted(roles)},
    )
    return value


def load_session(rt: Runtime, db: Session, value: str | None) -> ConsoleUser | None:
    """The operator behind a session cookie, or None (unknown, expired, or no longer an operator)."""
    if not value or len(value) > 200:
        return None
    row = db.get(ConsoleSession, _hash(value))
    if row is None:
        return None
    now = clock.now()
    if row.expires_at < _iso(now):
        db.delete(row)
        return None
    try:
        display, roles, dept = operator_for(db, row.person_id)
    except Problem:
        db.delete(row)
        return None
    if (now - datetime.fromisoformat(row.last_seen_at)).total_seconds() >= TOUCH_SECONDS:
        s = rt.settings
        absolute = datetime.fromisoformat(row.created_at) + timedelta(hours=s.session_absolute_hours)
        row.last_seen_at = _iso(now)
        row.expires_at = _iso(min(absolute, now + timedelta(minutes=s.session_idle_minutes)))
    return ConsoleUser(row.person_id, display, roles, dept, row.csrf_token, row.acr, row.id_hash, row.id_token, must_enrol=must_enrol(db, row.person_id))


def must_enrol(db: Session, person_id: str) -> bool:
    boot = db.get(BootstrapAdmin, person_id)
    return boot is not None and boot.enrolled_at is None


def close_session(rt: Runtime, db: Session, user: ConsoleUser) -> None:
    db.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == user.session_hash))
    rt.audit.record(db, actor=user.actor, action="admin.console.logout", target=f"person:{user.person_id}")


def close_sessions_of_sid(rt: Runtime, db: Session, sid: str) -> int:
    """End every console session tied to one SSO session (back-channel logout)."""
    rows = list(db.execute(select(ConsoleSession).where(ConsoleSession.sso_sid == sid)).scalars())
    for row in rows:
        db.delete(row)
        rt.audit.record(db, actor=Actor.system("sso"), action="admin.console.logout", target=f"person:{row.person_id}", details={"backchannel": True})
    return len(rows)


def close_sessions_of_person(rt: Runtime, db: Session, person_id: str) -> int:
    """End every console session of one person (a back-channel logout naming only ``sub``)."""
    rows = list(db.execute(select(ConsoleSession).where(ConsoleSession.person_id == person_id)).scalars())
    for row in rows:
        db.delete(row)
        rt.audit.record(db, actor=Actor.system("sso"), action="admin.console.logout", target=f"person:{row.person_id}", details={"backchannel": True})
    return len(rows)


def finish_enrolment(db: Session, person_id: str) -> None:
    boot = db.get(BootstrapAdmin, person_id)
    if boot is not None and boot.enrolled_at is None:
        boot.enrolled_at = _iso(clock.now())
