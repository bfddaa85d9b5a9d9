"""Console sign-in with a certificate (acr 2 by itself) through the platform's SSO behind a real
nginx that terminates TLS and passes the client certificate (the front of
``tests/auth_service/test_certlogin.py``, reused). The console is an ordinary OIDC relying party:
its server-side calls to the provider go through the same https front, trusting the test server
certificate the way a deployment trusts its own CA (``SSL_CERT_FILE``)."""

from __future__ import annotations

import pytest

from core.audit import search
from core.security import Actor
from tests.auth_service.agent import Agent
from tests.auth_service.test_certlogin import Front, _issue, front  # noqa: F401 - the module-scoped nginx front

pytestmark = [pytest.mark.slow]


def _sign_in(front: Front, holder) -> tuple[Agent, object]:  # type: ignore[no-untyped-def]
    agent = Agent(front.url, verify=front.tls(holder.cert, holder.key))
    page = agent.follow(agent.get("/admin/login?next=/admin/audit"))
    assert "/sso/login?ia=" in str(page.request.url), page.text[:300]
    done = agent.follow(agent.submit("/sso/login/cert", response=page), stop_at=front.url + "/admin/callback")
    assert done.status_code == 303 and "/admin/callback?" in done.headers["location"], done.text[:500]
    return agent, agent.http.get(done.headers["location"])


def test_an_operator_signs_in_to_the_console_with_a_certificate(front: Front, monkeypatch: pytest.MonkeyPatch) -> None:
    from identity import service as identity

    monkeypatch.setenv("SSL_CERT_FILE", str(front.server_ca))
    rt = front.rt
    operator = _issue(front, "证书审计员")
    with rt.db.transaction() as db:  # type: ignore[attr-defined]
        identity.set_operator(rt, db, Actor.cli(), person_id=operator.citizen.id, roles={"auditor"})
    agent, callback = _sign_in(front, operator)
    assert callback.status_code == 303 and callback.headers["location"] == "/admin/audit", callback.text[:500]
    cookie = next(c for c in callback.headers.get_list("set-cookie") if c.startswith("eauth_console="))
    assert "Secure" in cookie and "HttpOnly" in cookie
    page = agent.http.get("/admin/audit")
    assert page.status_code == 200 and "证书审计员" in page.text
    with rt.db.read() as db:  # type: ignore[attr-defined]
        login = search(db, action="sso.login.success", target=f"person:{operator.citizen.id}", limit=1)[0]
        console = search(db, action="admin.console.login", limit=5)
    assert login.details["amr"] == ["swk"]
    assert any(e.actor == f"operator:{operator.citizen.id}" and e.details.get("acr") == "2" and e.details.get("amr") == ["swk"] for e in console), [e.details for e in console]
    agent.close()
    # a certificate holder who is no operator is refused by the console (the SSO let them in)
    citizen = _issue(front, "普通证书持有人")
    agent, callback = _sign_in(front, citizen)
    assert callback.status_code == 403 and "eauth_console=" not in " ".join(callback.headers.get_list("set-cookie"))
    agent.close()
