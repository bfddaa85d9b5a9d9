"""Fixtures for the SSO tests: a person with a password, registered relying parties."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from auth_service import service
from core.security import Actor
from identity import service as identity
from tests.factories import unique_id_number, unique_phone

PASSWORD = "Tiananmen-Square-2026!"


@dataclass
class Citizen:
    id: str
    name: str
    id_number: str
    phone: str
    password: str = PASSWORD


@pytest.fixture
def citizen(rt) -> Citizen:  # type: ignore[no-untyped-def]
    number, phone = unique_id_number(), unique_phone()
    with rt.db.transaction() as db:
        person = identity.register_person(rt, db, Actor.cli(), name="王小明", id_number=number, phone=phone)
        service.set_password(rt, db, Actor.cli(), person_id=person.id, password=PASSWORD)
    return Citizen(person.id, person.name, number, phone)


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
