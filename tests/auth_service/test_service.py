"""Service contracts other packages rely on: passwords, client registration, signing keys, the verifier."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from auth_service import passwords, service
from auth_service.models import Client, Credential, SigningKey
from auth_service.oidc import jwks
from auth_service.oidc.access_token import issue_access_token, verify_access_token
from core.audit import search
from core.errors import Kind, Problem
from core.security import Actor
from identity import service as identity
from tests.factories import unique_id_number, unique_phone

ACTOR = Actor.cli()


def _person(rt, db, **kw):  # type: ignore[no-untyped-def]
    return identity.register_person(rt, db, ACTOR, name="张三", id_number=unique_id_number(), phone=unique_phone(), **kw)


def test_set_password_stores_argon2id_and_audits(rt, db) -> None:  # type: ignore[no-untyped-def]
    person = _person(rt, db)
    service.set_password(rt, db, ACTOR, person_id=person.id, password="correct horse battery")
    cred = db.get(Credential, person.id)
    assert cred.password_hash.startswith("$argon2id$v=19$m=7168,t=5,p=1$")  # OWASP m=7 MiB t=5 (passwords.py says why)
    assert "correct horse" not in cred.password_hash
    assert passwords.verify_password(cred.password_hash, "correct horse battery")
    assert not passwords.verify_password(cred.password_hash, "correct horse battery!")
    assert search(db, action="sso.password.set", target=f"person:{person.id}")


def test_hash_with_earlier_parameters_verifies_and_is_rehashed_at_login(rt) -> None:  # type: ignore[no-untyped-def]
    """A hash made with the parameters used before (OWASP m=19 MiB t=2) still lets its owner in, and
    the successful login replaces it with one made with today's parameters; a failed login does not."""
    from argon2 import PasswordHasher, Type

    from auth_service import login
    from tests.auth_service.conftest import new_citizen, test_net_ip

    citizen = new_citizen(rt)
    earlier = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID).hash(citizen.password)
    with rt.db.transaction() as db:
        db.get(Credential, citizen.id).password_hash = earlier
    assert passwords.needs_rehash(earlier)
    with pytest.raises(login.LoginFailed):
        login.check_password(rt, login=citizen.id_number, password=citizen.password + "x", ip=test_net_ip())
    with rt.db.read() as db:
        assert db.get(Credential, citizen.id).password_hash == earlier
    first = login.check_password(rt, login=citizen.id_number, password=citizen.password, ip=test_net_ip())
    assert first.person_id == citizen.id
    with rt.db.read() as db:
        stored = db.get(Credential, citizen.id).password_hash
    assert stored != earlier and stored.startswith("$argon2id$v=19$m=7168,t=5,p=1$") and not passwords.needs_rehash(stored)
    assert passwords.verify_password(stored, citizen.password)
    assert login.check_password(rt, login=citizen.phone, password=citizen.password, ip=test_net_ip()).person_id == citizen.id


@pytest.mark.parametrize("bad", ["short", "password123", "12345678", "aaaaaaaaaa", "abcdefghij"])
def test_weak_passwords_refused(rt, db, bad: str) -> None:  # type: ignore[no-untyped-def]
    person = _person(rt, db)
    with pytest.raises(Problem) as err:
        service.set_password(rt, db, ACTOR, person_id=person.id, password=bad)
    assert err.value.code == "sso.weak_password"


def test_password_containing_id_number_refused(rt, db) -> None:  # type: ignore[no-untyped-def]
    number = unique_id_number()
    person = identity.register_person(rt, db, ACTOR, name="李四", id_number=number)
    with pytest.raises(Problem) as err:
        service.set_password(rt, db, ACTOR, person_id=person.id, password="x" + number)
    assert err.value.code == "sso.weak_password"


def test_set_password_unknown_person(rt, db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Problem) as err:
        service.set_password(rt, db, ACTOR, person_id="0" * 32, password="a good long passphrase")
    assert err.value.kind is Kind.NOT_FOUND


def test_register_client_secret_hashed_shown_once(rt, db) -> None:  # type: ignore[no-untyped-def]
    view, secret = service.register_client(
        rt, db, ACTOR, name="税务局 App", redirect_uris=["https://tax.example.gov.cn/cb"], grant_types=["authorization_code", "refresh_token"], scopes=["openid", "profile"]
    )
    assert secret and len(secret) >= 40
    row = db.get(Client, view.client_id)
    assert secret not in (row.secret_hash or "") and row.secret_hash.startswith("sha256$")
    assert service.client_secret_matches(row.secret_hash, secret)
    assert view.redirect_uris == ("https://tax.example.gov.cn/cb",)
    assert search(db, action="sso.client.register", target=f"client:{view.client_id}")
    _, new_secret = service.rotate_secret(rt, db, ACTOR, client_id=view.client_id)
    assert not service.client_secret_matches(db.get(Client, view.client_id).secret_hash, secret)
    assert service.client_secret_matches(db.get(Client, view.client_id).secret_hash, new_secret)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"redirect_uris": ["http://evil.example.com/cb"]}, "sso.insecure_uri"),
        ({"redirect_uris": ["https://a.example.com/cb#frag"]}, "sso.invalid_uri"),
        ({"redirect_uris": ["/relative"]}, "sso.invalid_uri"),
        ({"redirect_uris": []}, "sso.redirect_uri_required"),
        ({"grant_types": ["implicit"]}, "sso.invalid_grant_types"),
        ({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}, "sso.public_client_credentials"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "sso.jwks_required"),
        ({"scopes": ["openid", "bad scope"]}, "sso.invalid_scopes"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "sso.invalid_auth_method"),
    ],
)
def test_register_client_validation(rt, db, kwargs, code) -> None:  # type: ignore[no-untyped-def]
    args = {"name": "x", "redirect_uris": ["https://a.example.com/cb"], "grant_types": ["authorization_code"], "scopes": ["openid"]} | kwargs
    with pytest.raises(Problem) as err:
        service.register_client(rt, db, ACTOR, **args)
    assert err.value.code == code


def test_bootstrap_created_rs256_and_es256_keys_in_hsm(rt) -> None:  # type: ignore[no-untyped-def]
    with rt.db.read() as db:
        rows = db.execute(select(SigningKey).where(SigningKey.status == "active")).scalars().all()
    assert {r.alg for r in rows} == {"RS256", "ES256"}
    for row in rows:
        assert row.label == f"oidc/{row.kid}"
        attrs = rt.token.attributes(row.label)
        assert attrs["sensitive"] and not attrs["extractable"]
    from auth_service.bootstrap import initialise

    assert initialise(rt, ACTOR) == []  # idempotent


def test_client_credentials_token_verifies_to_client_principal(rt) -> None:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        view, _ = service.register_client(rt, db, ACTOR, name="dept system", grant_types=["client_credentials"], scopes=["seal:1"])
    token, _, _ = issue_access_token(rt, client_id=view.client_id, subject=view.client_id, scope="seal:1")
    principal = verify_access_token(rt, token)
    assert principal.actor == Actor("client", view.client_id, "dept system")
    assert principal.scopes == frozenset({"seal:1"}) and principal.client_id == view.client_id and principal.person_id is None
    with rt.db.transaction() as db:
        service.disable_client(rt, db, ACTOR, client_id=view.client_id)
    from auth_service.oidc.access_token import RevocationSet

    RevocationSet.of(rt).refresh()
    with pytest.raises(Problem) as err:
        verify_access_token(rt, token)
    assert err.value.code == "auth.invalid_token"


def test_operator_token_carries_roles(rt) -> None:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        person = _person(rt, db)
        identity.set_operator(rt, db, ACTOR, person_id=person.id, roles={"approver"})
        view, _ = service.register_client(rt, db, ACTOR, name="console", redirect_uris=["https://console.example.gov.cn/cb"], first_party=True)
    token, _, _ = issue_access_token(rt, client_id=view.client_id, subject=person.id, scope="openid", acr="2", auth_time=1, session_id="s1")
    principal = verify_access_token(rt, token)
    assert principal.actor == Actor("operator", person.id, "张三")
    assert principal.roles == frozenset({"approver"}) and principal.acr == "2" and principal.person_id == person.id


def test_rotation_keeps_previous_key_published(rt) -> None:  # type: ignore[no-untyped-def]
    ring = jwks.KeyRing.of(rt)
    old_kid, _ = ring.signer("ES256")
    token, _, _ = issue_access_token(rt, client_id="c_x", subject="c_x", scope="")
    with rt.db.transaction() as db:
        info = service.rotate_signing_key(rt, db, ACTOR, alg="ES256")
    ring.reload()
    assert ring.signer("ES256")[0] == info.kid != old_kid
    published = {k["kid"] for k in __import__("json").loads(ring.jwks_json())["keys"]}
    assert {old_kid, info.kid} <= published
    from auth_service.oidc.access_token import verify_access_token_claims

    assert verify_access_token_claims(rt, token)["sub"] == "c_x"
