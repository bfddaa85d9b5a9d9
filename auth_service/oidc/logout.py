"""Logout: OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0.

Ending a session (``sessions.end_session``) queues one :class:`LogoutDelivery` per relying party of
the session that registered a ``backchannel_logout_uri``. A per-process deliverer thread POSTs a
freshly signed logout token (§2.4: ``iss``, ``aud``, ``iat``, ``exp``, ``jti``, ``sub``, ``sid``,
``events``; ``typ: logout+jwt``; never a ``nonce``) and retries with back-off (0 s, 5 s, 30 s,
2 min, 10 min) until the RP answers 2xx; each attempt is audited. Claims are atomic (a conditional
UPDATE), so several worker processes never deliver the same attempt twice. The same thread runs the
periodic purge of expired SSO rows (``auth_service.retention``).
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any

import httpx
from sqlalchemy import select, update

from auth_service import timestamps
from auth_service.models import Client, LogoutDelivery
from auth_service.oidc.jose import JoseError, parse_compact, sign_compact, verify_compact
from auth_service.oidc.jwks import KeyRing
from core.runtime import Runtime
from core.security import Actor

log = logging.getLogger("eauth.sso.logout")

EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_SECONDS = 120
RETRY_DELAYS = (5, 30, 120, 600)  # after attempts 1..4; attempt 5 is the last
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
POLL_SECONDS = 5.0
ID_TOKEN_ALG = "RS256"


def logout_token(rt: Runtime, *, client_id: str, person_id: str, session_id: str) -> str:
    now = timestamps.epoch()
    claims = {
        "iss": rt.settings.public_url,
        "aud": client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_SECONDS,
        "jti": secrets.token_urlsafe(16),
        "sub": person_id,
        "sid": session_id,
        "events": {EVENT: {}},
    }
    kid, key = KeyRing.of(rt).signer(ID_TOKEN_ALG)
    return sign_compact(key, ID_TOKEN_ALG, kid, claims, typ="logout+jwt")


def queue_backchannel(rt: Runtime, db: Any, *, session_id: str, person_id: str, client_ids: list[str]) -> list[str]:
    if not client_ids:
        return []
    now = timestamps.stamp()
    ids = []
    rows = db.execute(select(Client).where(Client.client_id.in_(client_ids), Client.backchannel_logout_uri.is_not(None))).scalars()
    for client in rows:
        delivery = LogoutDelivery(
            id=secrets.token_hex(16),
            session_id=session_id,
            client_id=client.client_id,
            uri=client.backchannel_logout_uri,
            logout_token="",
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        db.add(delivery)
        ids.append(delivery.id)
    return ids


def _claim(rt: Runtime, delivery_id: str) -> LogoutDelivery | None:
    """Take the next attempt of one delivery, or None if another process took it."""
    now = timestamps.stamp()
    with rt.db.transaction() as db:
        row = db.get(LogoutDelivery, delivery_id)
        if row is None or row.status != "pending" or row.next_attempt_at > now:
            return None
        attempts = row.attempts
        delay = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS) - 1)]
        claimed = db.execute(
            update(LogoutDelivery)
            .where(LogoutDelivery.id == delivery_id, LogoutDelivery.attempts == attempts, LogoutDelivery.status == "pending")
            .values(attempts=attempts + 1, next_attempt_at=timestamps.stamp(seconds=delay))
        ).rowcount
        if claimed != 1:
            return None
        db.refresh(row)
        db.expunge(row)
        return row


def deliver(rt: Runtime, delivery_id: str, *, client: httpx.Client | None = None) -> str | None:
    """Make one attempt; returns the resulting status (None when nothing was due)."""
    row = _claim(rt, delivery_id)
    if row is None:
        return None
    from auth_service.models import BrowserSession

    with rt.db.read() as db:
        session = db.get(BrowserSession, row.session_id)
        person_id = session.person_id if session else ""
    token = logout_token(rt, client_id=row.client_id, person_id=person_id, session_id=row.session_id)
    error = None
    try:
        owned = client is None
        http = client or httpx.Client(timeout=5.0, follow_redirects=False)
        try:
            response = http.post(row.uri, data={"logout_token": token}, headers={"Cache-Control": "no-cache"})
        finally:
            if owned:
                http.close()
        if not 200 <= response.status_code < 300:
            error = f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    now = timestamps.stamp()
    if error is None:
        status = "delivered"
    elif row.attempts >= MAX_ATTEMPTS:
        status = "failed"
    else:
        status = "pending"
    with rt.db.transaction() as db:
        current = db.get(LogoutDelivery, delivery_id)
        # Only the latest claimed attempt writes the status: a slow earlier attempt finishing after a
        # later one was claimed must not turn "failed"/"delivered" back into "pending".
        if current is not None and current.status == "pending" and (current.attempts == row.attempts or status == "delivered"):
            current.status = status
            current.logout_token = token
            current.last_error = error
            if status == "delivered":
                current.delivered_at = now
        rt.audit.record(
            db,
            actor=Actor.system("sso"),
            action="sso.backchannel.deliver",
            target=f"client:{row.client_id}",
            outcome="success" if error is None else "failure",
            details={"sid": row.session_id, "attempt": row.attempts, "status": status, "error": error, "uri": row.uri},
        )
    return status


def due_deliveries(rt: Runtime, *, limit: int = 50) -> list[str]:
    now = timestamps.stamp()
    with rt.db.read() as db:
        return list(
            db.execute(
                select(LogoutDelivery.id)
                .where(LogoutDelivery.status == "pending", LogoutDelivery.next_attempt_at <= now)
                .order_by(LogoutDelivery.next_attempt_at)
                .limit(limit)
            ).scalars()
        )


class Deliverer:
    """One daemon thread per process: delivers queued logout tokens now and retries later."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, rt: Runtime) -> Deliverer:
        found = rt.extensions.get("auth_service.deliverer")
        if found is None:
            found = rt.extensions.setdefault("auth_service.deliverer", cls(rt))
        return found

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="sso-backchannel", daemon=True)
                self._thread.start()

    def wake(self) -> None:
        self.start()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        from auth_service import retention

        schedule = retention.Schedule()
        with httpx.Client(timeout=5.0, follow_redirects=False) as client:
            while not self._stop.is_set():
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    for delivery_id in due_deliveries(self._rt):
                        deliver(self._rt, delivery_id, client=client)
                except Exception:  # noqa: BLE001 - the thread must survive a DB hiccup; rows stay pending
                    log.exception("back-channel logout delivery failed; will retry")
                if schedule.due():
                    try:
                        retention.purge_expired(self._rt)
                    except Exception:  # noqa: BLE001 - retried at the next period
                        log.exception("purging expired SSO rows failed; will retry")


# -- RP-initiated logout ----------------------------------------------------------------------------


def id_token_hint_claims(rt: Runtime, hint: str) -> dict[str, Any] | None:
    """Claims of an ID token we issued (expired ones too: OIDC RP-Initiated Logout §2), or None."""
    try:
        kid = parse_compact(hint).header.get("kid")
        _header, claims = verify_compact(hint, KeyRing.of(rt).verification_keys(kid), algorithms=("RS256", "ES256"))
    except JoseError:
        return None
    if claims.get("iss") != rt.settings.public_url or not isinstance(claims.get("sub"), str):
        return None
    return claims
