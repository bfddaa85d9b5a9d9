"""Server-side browser sessions (the SSO session shared by every relying party).

The cookie carries 256 random bits; the table stores only their SHA-256, so a copy of the database
cannot be replayed as cookies. A session ends at the first of: logout, the user ending it from the
account page, ``session_idle_minutes`` without activity, ``session_absolute_hours`` after login.
Ending a session revokes the tokens issued within it (except ``offline_access`` grants) and queues
a back-channel logout token for every relying party that took part (OIDC Back-Channel Logout 1.0).
On a new login the cookie value is always replaced (no session fixation).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from auth_service import timestamps
from auth_service.models import BrowserSession, Grant, SessionClient
from core.runtime import Runtime
from core.security import Actor

COOKIE = "eauth_sid"
TOUCH_EVERY_SECONDS = 60
ACR_ORDER = {"0": 0, "1": 1, "2": 2}


@dataclass(frozen=True)
class SessionView:
    id: str
    person_id: str
    acr: str
    amr: tuple[str, ...]
    auth_time: int
    created_at: str
    last_seen_at: str
    expires_at: str
    ip: str
    user_agent: str
    ended_at: str | None = None
    end_reason: str | None = None


_TABLE = BrowserSession.__table__
_VIEW_COLUMNS = tuple(_TABLE.c[name] for name in ("id", "person_id", "acr", "amr", "auth_time", "created_at", "last_seen_at", "expires_at", "ip", "user_agent", "ended_at", "end_reason"))
_BY_COOKIE = select(*_VIEW_COLUMNS).where(_TABLE.c.cookie_hash == bindparam("digest"))  # built once: every authorization request runs it


def _view(row: BrowserSession) -> SessionView:
    return SessionView(
        row.id, row.person_id, row.acr, tuple(row.amr.split()), row.auth_time, row.created_at, row.last_seen_at, row.expires_at, row.ip, row.user_agent, row.ended_at, row.end_reason
    )


def cookie_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _expiry_reason(rt: Runtime, row: BrowserSession, now: str) -> str | None:
    if row.ended_at:
        return "ended"
    if row.expires_at <= now:
        return "absolute_timeout"
    idle_limit = timestamps.stamp(timestamps.parse(row.last_seen_at), minutes=rt.settings.session_idle_minutes)
    if idle_limit <= now:
        return "idle_timeout"
    return None


def current_session(rt: Runtime, cookie_value: str | None, *, db: Session | None = None) -> SessionView | None:
    """The live session for a cookie, or None. Ends sessions found timed out; records activity.

    ``db``: a write transaction of the caller to do it in (the authorization endpoint looks the
    session up in the transaction that stores the code: one database session per request)."""
    if not cookie_value or len(cookie_value) > 200:
        return None
    if db is not None:
        return _current_session(rt, db, cookie_value)
    digest = cookie_hash(cookie_value)
    with rt.db.read() as read:
        row = _session_row(read, digest)
    if row is None or row.ended_at:
        return None
    if not _needs_write(rt, row):
        return _view(row)
    with rt.db.transaction() as write:
        return _current_session(rt, write, cookie_value)


def _session_row(db: Session, digest: str) -> Any:
    # Core, not ORM: every authorization request of a signed-in user runs this.
    return db.connection().execute(_BY_COOKIE, {"digest": digest}).one_or_none()


def _needs_write(rt: Runtime, row: Any) -> bool:
    now = timestamps.stamp()
    return _expiry_reason(rt, row, now) is not None or timestamps.parse(now) - timestamps.parse(row.last_seen_at) >= timedelta(seconds=TOUCH_EVERY_SECONDS)


def _current_session(rt: Runtime, db: Session, cookie_value: str) -> SessionView | None:
    now = timestamps.stamp()
    row = _session_row(db, cookie_hash(cookie_value))
    if row is None:
        return None
    reason = _expiry_reason(rt, row, now)
    if reason == "ended":
        return None
    if reason is not None:
        end_session(rt, db, Actor.system("sso"), session_id=row.id, reason=reason)
        return None
    if timestamps.parse(now) - timestamps.parse(row.last_seen_at) >= timedelta(seconds=TOUCH_EVERY_SECONDS):
        db.execute(update(BrowserSession).where(BrowserSession.id == row.id, BrowserSession.ended_at.is_(None)).values(last_seen_at=now))
    return _view(row)


def start_session(
    rt: Runtime,
    db: Session,
    *,
    person_id: str,
    acr: str,
    amr: list[str],
    ip: str,
    user_agent: str,
    previous: SessionView | None,
) -> tuple[SessionView, str]:
    """A fresh cookie for a completed login. Step-up of the same person keeps the ``sid`` (relying
    parties already know it) and raises its level; anyone else's session is ended first."""
    cookie = secrets.token_urlsafe(32)
    now_dt = timestamps.now()
    now = timestamps.stamp(now_dt)
    if previous is not None and previous.person_id == person_id:
        row = db.get(BrowserSession, previous.id)
        if row is not None and row.ended_at is None:
            row.cookie_hash = cookie_hash(cookie)
            if ACR_ORDER.get(acr, 0) >= ACR_ORDER.get(row.acr, 0):
                row.acr = acr
            row.amr = " ".join(dict.fromkeys([*row.amr.split(), *amr]))
            row.auth_time = timestamps.epoch(now_dt)
            row.last_seen_at = now
            row.ip, row.user_agent = ip[:64], user_agent[:300]
            db.flush()
            return _view(row), cookie
    if previous is not None:
        end_session(rt, db, Actor("person", previous.person_id), session_id=previous.id, reason="replaced")
    row = BrowserSession(
        id=secrets.token_urlsafe(16),
        cookie_hash=cookie_hash(cookie),
        person_id=person_id,
        acr=acr,
        amr=" ".join(dict.fromkeys(amr)),
        auth_time=timestamps.epoch(now_dt),
        created_at=now,
        last_seen_at=now,
        expires_at=timestamps.stamp(now_dt, hours=rt.settings.session_absolute_hours),
        ip=ip[:64],
        user_agent=user_agent[:300],
    )
    db.add(row)
    db.flush()
    return _view(row), cookie


_RECORDED: dict[tuple[str, str], None] = {}  # (sid, client) pairs known to be stored, per process


def record_client(db: Session, session_id: str, client_id: str) -> None:
    """Remember that ``client_id`` took part in the session (for back-channel logout). Pairs already
    stored are remembered in this process, so a returning RP costs no query."""
    pair = (session_id, client_id)
    if pair in _RECORDED:
        return
    if db.get(SessionClient, pair) is None:
        db.add(SessionClient(session_id=session_id, client_id=client_id, first_at=timestamps.stamp()))
        db.flush()
    else:
        if len(_RECORDED) > 100_000:
            _RECORDED.clear()
        _RECORDED[pair] = None


def list_sessions(db: Session, person_id: str) -> list[SessionView]:
    now = timestamps.stamp()
    rows = db.execute(
        select(BrowserSession)
        .where(BrowserSession.person_id == person_id, BrowserSession.ended_at.is_(None), BrowserSession.expires_at > now)
        .order_by(BrowserSession.created_at.desc())
    ).scalars()
    return [_view(r) for r in rows]


def get_session(db: Session, session_id: str) -> SessionView | None:
    row = db.get(BrowserSession, session_id) if isinstance(session_id, str) and len(session_id) <= 32 else None
    return _view(row) if row else None


def end_session(rt: Runtime, db: Session, actor: Actor, *, session_id: str, reason: str) -> list[str]:
    """End a session: revoke its tokens, queue back-channel logout to its relying parties, audit.
    Returns the ids of the queued deliveries (the caller wakes the deliverer after commit)."""
    from auth_service.oidc import logout
    from auth_service.service import revoke_key

    row = db.execute(select(BrowserSession).where(BrowserSession.id == session_id).with_for_update()).scalar_one_or_none()
    if row is None or row.ended_at is not None:
        return []
    now = timestamps.stamp()
    row.ended_at, row.end_reason = now, reason
    grants = db.execute(select(Grant).where(Grant.session_id == session_id, Grant.revoked_at.is_(None))).scalars().all()
    for grant in grants:
        if "offline_access" not in grant.scope.split():
            grant.revoked_at, grant.revoke_reason = now, "logout"
    # Access tokens name their session: revoke them all for as long as any could still be valid.
    revoke_key(db, f"sid:{session_id}", minutes=rt.settings.access_token_minutes + 2)
    clients = [c.client_id for c in db.execute(select(SessionClient).where(SessionClient.session_id == session_id)).scalars()]
    deliveries = logout.queue_backchannel(rt, db, session_id=session_id, person_id=row.person_id, client_ids=clients)
    rt.audit.record(
        db,
        actor=actor,
        action="sso.session.end",
        target=f"person:{row.person_id}",
        details={"sid": session_id, "reason": reason, "clients": clients, "backchannel": len(deliveries)},
    )
    db.flush()
    return deliveries
