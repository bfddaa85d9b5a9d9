"""JWT access tokens (RFC 9068) and the platform's token verifier.

Tokens are ``typ: at+jwt``, ES256-signed in the HSM, with ``iss``, ``aud`` (the platform API),
``sub``, ``client_id``, ``scope``, ``jti``, ``iat``/``exp`` and, for a person, ``auth_time``,
``acr``, ``amr`` and the session ``sid``; ``gid`` names the grant (token family) so revoking a
refresh-token family or replaying a code revokes its access tokens too.

Verification is local and cheap — signature with a cached public key, claim checks — plus a look-up
in the per-process revocation set, which every process re-reads from ``sso_revocations`` at most
once a second (revocations take effect within that second everywhere). The :class:`Principal`'s
roles come from the identity registry (operators), cached for a few seconds.
"""

from __future__ import annotations

import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from auth_service import timestamps
from auth_service.models import Revocation
from auth_service.oidc.jose import JoseError, sign_compact, verify_compact
from auth_service.oidc.jwks import KeyRing
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Actor, Principal
from identity import service as identity

AT_TYP = "at+jwt"
ACCESS_TOKEN_ALG = "ES256"
CLOCK_SKEW = 60
REVOCATION_POLL_SECONDS = 1.0
SUBJECT_TTL_SECONDS = 5.0


def api_audience(rt: Runtime) -> str:
    """The ``aud`` of access tokens for the platform's own APIs (RFC 8707 resource)."""
    return rt.settings.public_url + "/api"


def issue_access_token(
    rt: Runtime,
    *,
    client_id: str,
    subject: str,
    scope: str,
    lifetime: int | None = None,
    grant_id: str | None = None,
    session_id: str | None = None,
    acr: str | None = None,
    amr: list[str] | None = None,
    auth_time: int | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, int, str]:
    """Sign an RFC 9068 access token in the HSM. Returns ``(token, expires_in, jti)``."""
    lifetime = lifetime or rt.settings.access_token_minutes * 60
    now = timestamps.epoch()
    jti = secrets.token_urlsafe(16)
    claims: dict[str, Any] = {
        "iss": rt.settings.public_url,
        "sub": subject,
        "aud": api_audience(rt),
        "client_id": client_id,
        "scope": scope,
        "jti": jti,
        "iat": now,
        "exp": now + lifetime,
    }
    if grant_id:
        claims["gid"] = grant_id
    if session_id:
        claims["sid"] = session_id
    if auth_time is not None:
        claims["auth_time"] = auth_time
    if acr:
        claims["acr"] = acr
    if amr:
        claims["amr"] = amr
    if extra:
        claims.update(extra)
    kid, key = KeyRing.of(rt).signer(ACCESS_TOKEN_ALG)
    return sign_compact(key, ACCESS_TOKEN_ALG, kid, claims, typ=AT_TYP), lifetime, jti


# -- revocations -----------------------------------------------------------------------------------


_ALL_SETS: weakref.WeakSet[RevocationSet] = weakref.WeakSet()


def revocations_changed() -> None:
    """Called after a commit that added revocations: this process sees them at once (other
    processes within ``REVOCATION_POLL_SECONDS``)."""
    for found in list(_ALL_SETS):
        found.mark_stale()


class RevocationSet:
    """The unexpired rows of ``sso_revocations``, re-read at most once per second per process."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._keys: frozenset[str] = frozenset()
        self._loaded_at = 0.0
        self._forced = True  # a revocation committed here: the next check must wait for the re-read
        self._lock = threading.Lock()
        _ALL_SETS.add(self)

    def mark_stale(self) -> None:
        self._forced = True

    @classmethod
    def of(cls, rt: Runtime) -> RevocationSet:
        found = rt.extensions.get("auth_service.revocations")
        if found is None:
            found = rt.extensions.setdefault("auth_service.revocations", cls(rt))
        return found

    def refresh(self) -> None:
        with self._lock:
            self._reload()

    def _reload(self) -> None:
        self._forced = False
        now = timestamps.stamp()
        with self._rt.db.read() as db:
            self._keys = frozenset(db.execute(select(Revocation.key).where(Revocation.expires_at > now)).scalars())
        self._loaded_at = time.monotonic()

    def revoked(self, *keys: str | None) -> bool:
        if self._forced:
            # A revocation was committed in this process: wait for a re-read that includes it.
            self.refresh()
        elif time.monotonic() - self._loaded_at > REVOCATION_POLL_SECONDS and self._lock.acquire(blocking=False):
            # The periodic re-read (other processes' revocations): one thread does it while the
            # others keep answering from the set they have, instead of queueing behind the query.
            try:
                self._reload()
            finally:
                self._lock.release()
        current = self._keys
        return any(k is not None and k in current for k in keys)


# -- subjects --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    actor: Actor
    roles: frozenset[str]
    department_ids: frozenset[str]


class SubjectCache:
    """Who a ``sub`` is (name, operator roles, departments), cached briefly per process."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._entries: dict[str, tuple[float, Subject | None]] = {}

    @classmethod
    def of(cls, rt: Runtime) -> SubjectCache:
        found = rt.extensions.get("auth_service.subjects")
        if found is None:
            found = rt.extensions.setdefault("auth_service.subjects", cls(rt))
        return found

    def person(self, person_id: str) -> Subject | None:
        hit = self._entries.get("p:" + person_id)
        if hit is not None and time.monotonic() - hit[0] < SUBJECT_TTL_SECONDS:
            return hit[1]
        with self._rt.db.read() as db:
            try:
                person = identity.get_person(db, person_id)
            except Problem:
                subject = None
            else:
                op = identity.get_operator(db, person_id)
                if op is not None and op.active:
                    subject = Subject(
                        Actor("operator", person_id, person.name),
                        frozenset(op.roles),
                        frozenset({op.department_id}) if op.department_id else frozenset(),
                    )
                else:
                    depts = frozenset(m.org_id for m in identity.memberships_of(db, person_id))
                    subject = Subject(Actor("person", person_id, person.name), frozenset(), depts)
        if len(self._entries) > 50_000:
            self._entries.clear()
        self._entries["p:" + person_id] = (time.monotonic(), subject)
        return subject

    def client(self, client_id: str) -> Subject | None:
        from auth_service.oidc.client_auth import ClientCache

        client = ClientCache.of(self._rt).get(client_id)
        if client is None or not client.active:
            return None
        depts = frozenset({client.department_id}) if client.department_id else frozenset()
        return Subject(Actor("client", client_id, client.name), frozenset(), depts)


# -- verification ----------------------------------------------------------------------------------


def _invalid(reason: str) -> Problem:
    return Problem(
        Kind.UNAUTHENTICATED,
        "auth.invalid_token",
        f"the access token is not valid ({reason})",
        headers={"WWW-Authenticate": f'Bearer realm="eauth", error="invalid_token", error_description="{reason}"'},
    )


def verify_access_token_claims(rt: Runtime, token: str) -> dict[str, Any]:
    """Signature, type, issuer, audience, lifetime and revocation; returns the verified claims."""
    ring = KeyRing.of(rt)
    try:
        from auth_service.oidc.jose import parse_compact

        kid = parse_compact(token).header.get("kid")
        _header, claims = verify_compact(token, ring.verification_keys(kid), algorithms=("ES256", "RS256"), typ=AT_TYP)
    except JoseError as exc:
        raise _invalid(exc.reason) from None
    now = timestamps.epoch()
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise _invalid("missing exp/iat")
    if exp <= now - CLOCK_SKEW:
        raise _invalid("expired")
    if iat > now + CLOCK_SKEW:
        raise _invalid("issued in the future")
    if claims.get("iss") != rt.settings.public_url:
        raise _invalid("wrong issuer")
    aud = claims.get("aud")
    if aud != api_audience(rt) and not (isinstance(aud, list) and api_audience(rt) in aud):
        raise _invalid("wrong audience")
    for name in ("sub", "client_id", "jti"):
        if not isinstance(claims.get(name), str):
            raise _invalid(f"missing {name}")
    if not isinstance(claims.get("scope", ""), str):
        raise _invalid("bad scope")
    revocations = RevocationSet.of(rt)
    gid, sid = claims.get("gid"), claims.get("sid")
    if revocations.revoked(
        "jti:" + claims["jti"],
        "client:" + claims["client_id"],
        "grant:" + gid if isinstance(gid, str) else None,
        "sid:" + sid if isinstance(sid, str) else None,
    ):
        raise _invalid("revoked")
    return claims


def verify_access_token(rt: Runtime, token: str) -> Principal:
    """``rt.token_verifier``: an access token → the verified :class:`Principal`."""
    claims = verify_access_token_claims(rt, token)
    subjects = SubjectCache.of(rt)
    client_id = claims["client_id"]
    is_client_token = claims["sub"] == client_id
    subject = subjects.client(client_id) if is_client_token else subjects.person(claims["sub"])
    if subject is None:
        raise _invalid("unknown or disabled subject")
    if not is_client_token and subjects.client(client_id) is None:
        raise _invalid("client disabled")
    return Principal(
        actor=subject.actor,
        roles=subject.roles,
        scopes=frozenset(claims.get("scope", "").split()),
        acr=claims.get("acr") if isinstance(claims.get("acr"), str) else None,
        client_id=client_id,
        person_id=None if is_client_token else claims["sub"],
        department_ids=subject.department_ids,
        claims=claims,
    )


def install_verifier(rt: Runtime) -> None:
    rt.token_verifier = lambda token: verify_access_token(rt, token)
