"""Console fixtures: operators with real console sessions, talking to the live app over HTTP.

A session is opened with ``admin.sessions.open_session`` — the same call the OIDC callback makes
after the provider authenticated the operator — so page tests do not depend on the browser login,
which ``test_login.py`` and the browser test exercise end to end.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from core.security import Actor, Role
from tests.factories import unique_id_number


@dataclass
class Operator:
    person_id: str
    name: str
    cookie: str
    csrf: str
    http: httpx.Client

    @property
    def ref(self) -> str:
        return f"operator:{self.person_id}"

    def post(self, url: str, data: dict | None = None, **kw) -> httpx.Response:  # type: ignore[type-arg,no-untyped-def]
        return self.http.post(url, data={"csrf_token": self.csrf, **(data or {})}, **kw)


def open_operator(rt, base_url: str, roles, *, name: str = "操作员", department_id: str | None = None, acr: str = "2") -> Operator:  # type: ignore[no-untyped-def]
    from admin import sessions
    from admin.models import ConsoleSession
    from identity import service as identity

    with rt.db.transaction() as db:
        person = identity.register_person(rt, db, Actor.cli(), name=name, id_number=unique_id_number())
        identity.set_operator(rt, db, Actor.cli(), person_id=person.id, roles={r.value if isinstance(r, Role) else r for r in roles}, department_id=department_id)
        cookie = sessions.open_session(rt, db, person_id=person.id, acr=acr)
        csrf = db.get(ConsoleSession, hashlib.sha256(cookie.encode()).hexdigest()).csrf_token
    client = httpx.Client(base_url=base_url, cookies={"eauth_console": cookie}, follow_redirects=False, timeout=60)
    return Operator(person.id, name, cookie, csrf, client)


@pytest.fixture
def operator(rt, live) -> Iterator:  # type: ignore[no-untyped-def]
    """``operator(Role.APPROVER, name=...)`` → an Operator with a signed-in console session."""
    made: list[Operator] = []

    def make(*roles, **kw) -> Operator:  # type: ignore[no-untyped-def]
        op = open_operator(rt, live.url, roles, **kw)
        made.append(op)
        return op

    yield make
    for op in made:
        op.http.close()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)
