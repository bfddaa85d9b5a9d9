"""Fixtures for the SSO tests: a person with a password, registered relying parties, the provider's
metadata, a scripted browser (``agent``) and an independent relying party (Authlib)."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass

import httpx
import pytest

from auth_service import service
from core.security import Actor
from identity import service as identity
from tests.auth_service.agent import Agent
from tests.factories import unique_id_number, unique_phone

PASSWORD = "Tiananmen-Square-2026!"


@dataclass
class Citizen:
    id: str
    name: str
    id_number: str
    phone: str
    password: str = PASSWORD


def new_citizen(rt, *, name: str = "王小明", email: str | None = None) -> Citizen:  # type: ignore[no-untyped-def]
    number, phone = unique_id_number(), unique_phone()
    with rt.db.transaction() as db:
        person = identity.register_person(rt, db, Actor.cli(), name=name, id_number=number, phone=phone, **({"email": email} if email else {}))
        service.set_password(rt, db, Actor.cli(), person_id=person.id, password=PASSWORD)
    return Citizen(person.id, person.name, number, phone)


@pytest.fixture
def citizen(rt) -> Citizen:  # type: ignore[no-untyped-def]
    return new_citizen(rt)


@pytest.fixture
def make_client(rt):  # type: ignore[no-untyped-def]
    def make(**kwargs):  # type: ignore[no-untyped-def]
        args = {
            "name": "不动产登记 App",
            "redirect_uris": ["http://127.0.0.1:9/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": ["openid", "profile", "phone", "offline_access"],
            "post_logout_redirect_uris": ["http://127.0.0.1:9/bye"],
        } | kwargs
        with rt.db.transaction() as db:
            return service.register_client(rt, db, Actor.cli(), **args)

    return make


@pytest.fixture
def meta(live) -> dict:  # type: ignore[no-untyped-def]
    """The provider's discovery document, as any relying party fetches it."""
    return httpx.get(live.url + "/.well-known/openid-configuration", timeout=10).raise_for_status().json()


_NEXT_IP = itertools.count(secrets.randbelow(60_000))


def test_net_ip() -> str:
    """A distinct address per browser, never repeated in a run, from 198.18.0.0/15 (RFC 2544 benchmark
    range; only ever written into a header): the loopback peer is a trusted proxy, so X-Forwarded-For
    sets the client address, and per-address lockouts of one test cannot leak into another."""
    n = next(_NEXT_IP) % 131_072
    return f"198.{18 + n // 65536}.{(n // 256) % 256}.{n % 256}"


test_net_ip.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def agent(live):  # type: ignore[no-untyped-def]
    browser = Agent(live.url, headers={"X-Forwarded-For": test_net_ip(), "User-Agent": "eauth-test-agent"})
    yield browser
    browser.close()


@pytest.fixture
def new_agent(live):  # type: ignore[no-untyped-def]
    """A factory of further independent browsers (separate cookie jars)."""
    made: list[Agent] = []

    def make() -> Agent:
        browser = Agent(live.url, headers={"X-Forwarded-For": test_net_ip(), "User-Agent": "eauth-test-agent"})
        made.append(browser)
        return browser

    yield make
    for browser in made:
        browser.close()
