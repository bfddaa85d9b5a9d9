"""Retention: delete SSO rows that can no longer matter, so hot tables stay small.

Each kind is kept exactly as long as it can still have an effect: a pending login interaction until
it expires; an authorization code an hour past expiry (a late replay still finds it and still
revokes what the first redemption got); a revocation and a private_key_jwt ``jti`` until the token
or assertion they refuse would have expired anyway; SMS codes a day; refresh tokens until their own
expiry (a used one is what detects reuse); failed-login counters once forgotten and not locking.
Everything here was audited when it mattered, so nothing of record is lost.

The back-channel deliverer thread runs :func:`purge_expired` every ``EVERY_SECONDS`` in each
process; deletes are idempotent, so several workers doing it is harmless.
"""

from __future__ import annotations

import time

from sqlalchemy import and_, delete, or_

from auth_service import timestamps
from auth_service.models import AuthorizationCode, ClientAssertion, Interaction, RefreshToken, Revocation, SmsCode, Throttle
from core.runtime import Runtime

EVERY_SECONDS = 600.0
CODE_GRACE_HOURS = 1
SMS_GRACE_HOURS = 24


def purge_expired(rt: Runtime) -> dict[str, int]:
    """Delete what expired; returns the number of rows per table."""
    now = timestamps.stamp()
    code_horizon = timestamps.stamp(hours=-CODE_GRACE_HOURS)
    sms_horizon = timestamps.stamp(hours=-SMS_GRACE_HOURS)
    from auth_service.login import FAILURE_MEMORY_HOURS

    forgotten = timestamps.stamp(hours=-FAILURE_MEMORY_HOURS)
    statements = {
        "sso_interactions": delete(Interaction).where(Interaction.expires_at <= now),
        "sso_codes": delete(AuthorizationCode).where(AuthorizationCode.expires_at <= code_horizon),
        "sso_revocations": delete(Revocation).where(Revocation.expires_at <= now),
        "sso_client_assertions": delete(ClientAssertion).where(ClientAssertion.expires_at <= now),
        "sso_sms_codes": delete(SmsCode).where(SmsCode.expires_at <= sms_horizon),
        "sso_refresh_tokens": delete(RefreshToken).where(RefreshToken.expires_at <= now),
        "sso_throttle": delete(Throttle).where(
            and_(Throttle.updated_at <= forgotten, or_(Throttle.locked_until.is_(None), Throttle.locked_until <= now))
        ),
    }
    counts = {}
    with rt.db.transaction() as db:
        for table, statement in statements.items():
            counts[table] = db.execute(statement).rowcount or 0
    return counts


class Schedule:
    """``due()`` is true at most once per ``EVERY_SECONDS`` (first call: at once)."""

    def __init__(self, every: float = EVERY_SECONDS) -> None:
        self.every = every
        self._next = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.every
        return True
