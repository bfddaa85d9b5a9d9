"""Retention: expired SSO rows are purged, live ones kept (auth_service.retention)."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from auth_service import retention, timestamps
from auth_service.models import AuthorizationCode, ClientAssertion, Grant, Interaction, RefreshToken, Revocation, SmsCode, Throttle

PAST = "2000-01-01T00:00:00+00:00"


def _rows(rt, citizen, client_id: str, expires: str, tag: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    now = timestamps.stamp()
    grant = Grant(id=secrets.token_hex(16), client_id=client_id, person_id=citizen.id, scope="openid", created_at=now, expires_at=timestamps.stamp(days=1))
    return {
        "interaction": Interaction(id_hash=secrets.token_hex(32), browser_hash="b", client_id=client_id, params="{}", amr="", created_at=now, expires_at=expires),
        "code": AuthorizationCode(
            code_hash=secrets.token_hex(32), grant_id=secrets.token_hex(16), client_id=client_id, session_id="s", person_id=citizen.id,
            redirect_uri="http://127.0.0.1:9/cb", scope="openid", acr="1", amr="pwd", auth_time=0, created_at=now, expires_at=expires,
        ),
        "revocation": Revocation(key=f"jti:{tag}-{secrets.token_hex(8)}", created_at=now, expires_at=expires),
        "assertion": ClientAssertion(jti_hash=secrets.token_hex(32), client_id=client_id, expires_at=expires),
        "sms": SmsCode(id=secrets.token_hex(16), person_id=citizen.id, code_hash="x", created_at=now, expires_at=expires, attempts=0),
        "grant": grant,
        "refresh": RefreshToken(token_hash=secrets.token_hex(32), grant_id=grant.id, created_at=now, expires_at=expires),
        "throttle": Throttle(key=f"acct:?{tag}{secrets.token_hex(8)}", failures=3, locked_until=None, updated_at=expires),
    }


def test_purge_removes_only_what_expired(rt, citizen, make_client) -> None:  # type: ignore[no-untyped-def]
    client, _ = make_client()
    old = _rows(rt, citizen, client.client_id, PAST, "old")
    live = _rows(rt, citizen, client.client_id, timestamps.stamp(hours=2), "live")
    live["throttle"].updated_at = timestamps.stamp()  # type: ignore[attr-defined]
    with rt.db.transaction() as db:
        for row in [*old.values(), *live.values()]:
            db.add(row)
            db.flush()
    counts = retention.purge_expired(rt)
    assert all(counts[t] >= 1 for t in ("sso_interactions", "sso_codes", "sso_revocations", "sso_client_assertions", "sso_sms_codes", "sso_refresh_tokens", "sso_throttle")), counts
    with rt.db.read() as db:
        for name, model, key in [
            ("interaction", Interaction, Interaction.id_hash),
            ("code", AuthorizationCode, AuthorizationCode.code_hash),
            ("revocation", Revocation, Revocation.key),
            ("assertion", ClientAssertion, ClientAssertion.jti_hash),
            ("sms", SmsCode, SmsCode.id),
            ("refresh", RefreshToken, RefreshToken.token_hash),
            ("throttle", Throttle, Throttle.key),
        ]:
            pk = key.key
            assert db.execute(select(key).where(key == getattr(old[name], pk))).first() is None, name
            assert db.execute(select(key).where(key == getattr(live[name], pk))).first() is not None, name
    # a code expired less than an hour ago is kept: a late replay must still find it
    recent = _rows(rt, citizen, client.client_id, timestamps.stamp(minutes=-5), "recent")["code"]
    with rt.db.transaction() as db:
        db.add(recent)
    retention.purge_expired(rt)
    with rt.db.read() as db:
        assert db.get(AuthorizationCode, recent.code_hash) is not None  # type: ignore[attr-defined]


def test_schedule() -> None:
    schedule = retention.Schedule(every=3600)
    assert schedule.due() and not schedule.due()
