"""Identity registry: one record per ID number / USCC; personal data never stored in the clear."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from core.errors import Kind, Problem
from core.security import Actor
from identity import service
from tests.factories import unique_id_number, unique_phone, unique_uscc

ACTOR = Actor.cli()


def test_register_twice_finds_the_same_person(rt, db) -> None:  # type: ignore[no-untyped-def]
    idn = unique_id_number()
    first = service.register_person(rt, db, ACTOR, name="李四", id_number=idn, phone=unique_phone())
    again = service.register_person(rt, db, ACTOR, name="李四", id_number=idn.lower())
    assert first.created and not again.created and again.id == first.id
    assert first.id_number_masked == idn[:6] + "********" + idn[-4:]


def test_find_by_login_name(rt, db) -> None:  # type: ignore[no-untyped-def]
    idn, phone = unique_id_number(), unique_phone()
    p = service.register_person(rt, db, ACTOR, name="王五", id_number=idn, phone=phone, email=f"w{phone}@example.cn")
    for login in (idn, phone, f"+86 {phone}", f"W{phone}@Example.cn"):
        found = service.find_person_by_login(rt, db, login)
        assert found is not None and found.id == p.id, login
    assert service.find_person_by_login(rt, db, unique_phone()) is None


def test_invalid_id_number_is_a_validation_problem(rt, db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Problem) as info:
        service.register_person(rt, db, ACTOR, name="x", id_number="110105194912310021")
    p = info.value
    assert p.kind is Kind.VALIDATION and p.code == "identity.invalid_id_number"
    body = p.to_dict()
    assert body["status"] == 422 and body["errors"][0]["name"] == "id_number"


def test_invalid_uscc_and_org_type(rt, db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Problem) as info:
        service.register_org(rt, db, ACTOR, name="x", uscc="91350100M000100Y44")
    assert info.value.code == "identity.invalid_uscc" and info.value.to_dict()["errors"][0]["name"] == "uscc"
    with pytest.raises(Problem) as info:
        service.register_org(rt, db, ACTOR, name="x", uscc=unique_uscc(), type="club")
    assert info.value.code == "identity.invalid_org_type"


def test_register_org_twice_and_departments(rt, db) -> None:  # type: ignore[no-untyped-def]
    uscc = unique_uscc()
    gov = service.register_org(rt, db, ACTOR, name="省政务服务中心", uscc=uscc, type="government", dns_suffixes=["zwfw.example.gov.cn"])
    assert service.register_org(rt, db, ACTOR, name="other", uscc=uscc.lower()).id == gov.id
    dept = service.register_org(rt, db, ACTOR, name="证照科", uscc=unique_uscc(), type="government", parent_id=gov.id)
    person = service.register_person(rt, db, ACTOR, name="赵六", id_number=unique_id_number())
    service.add_membership(rt, db, ACTOR, person_id=person.id, org_id=dept.id, title="科员")
    assert [m.org_id for m in service.memberships_of(db, person.id)] == [dept.id]
    assert gov.dns_suffixes == ("zwfw.example.gov.cn",)


def test_phone_belongs_to_one_person(rt, db) -> None:  # type: ignore[no-untyped-def]
    phone = unique_phone()
    service.register_person(rt, db, ACTOR, name="a", id_number=unique_id_number(), phone=phone)
    with pytest.raises(Problem) as info:
        service.register_person(rt, db, ACTOR, name="b", id_number=unique_id_number(), phone=phone)
    assert info.value.kind is Kind.CONFLICT


def test_reveal_needs_permission_and_is_audited(rt, db) -> None:  # type: ignore[no-untyped-def]
    idn = unique_id_number()
    p = service.register_person(rt, db, ACTOR, name="钱七", id_number=idn)
    with pytest.raises(Problem) as info:
        service.reveal_person(rt, db, ACTOR, frozenset({"registration_officer"}), p.id, reason="check")
    assert info.value.kind is Kind.FORBIDDEN
    full = service.reveal_person(rt, db, ACTOR, frozenset({"pii_reveal"}), p.id, reason="窗口核验")
    assert full.id_number == idn
    last = db.execute(text("SELECT action, target FROM audit_entries ORDER BY seq DESC LIMIT 1")).one()
    assert tuple(last) == ("identity.person.reveal", f"person:{p.id}")


def test_raw_database_holds_no_plaintext_pii(fresh_rt) -> None:  # type: ignore[no-untyped-def]
    rt = fresh_rt
    idn, phone = unique_id_number(), unique_phone()
    with rt.db.transaction() as s:
        service.register_person(rt, s, ACTOR, name="孙八", id_number=idn, phone=phone, email="sunba@example.cn")
    if rt.db.dialect == "sqlite":
        rt.db.dispose()  # checkpoint the WAL into the main file
        db_file = Path(rt.settings.db_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    else:
        import subprocess

        from sqlalchemy.engine import make_url

        u = make_url(rt.settings.db_url)
        raw = subprocess.run(["pg_dump", "-h", u.host, "-U", u.username, u.database], capture_output=True, check=True).stdout
    assert idn.encode() not in raw and phone.encode() not in raw and b"sunba@example.cn" not in raw
    assert "孙八".encode() in raw  # sanity: the row is there
