"""CA administrator pages and API: the hierarchy with keys and fingerprints, OCSP responder and TSA
certificates and keys, the profiles' rules, CRL publication, operators — each role-checked, the
actions audited. Fingerprints are checked against the certificates the CA publishes."""

from __future__ import annotations

import hashlib

import httpx

from core.audit import search
from core.security import Role
from tests.admin.test_seals import token_client
from tests.factories import unique_id_number


def test_console_shows_hierarchy_keys_and_service_certificates(rt, live, operator) -> None:  # type: ignore[no-untyped-def]
    from ca import hierarchy
    from signing import service as signing_service

    signing_service.tsa_authority(rt)
    admin = operator(Role.CA_ADMIN, name="CA管理员甲")
    page = admin.http.get("/admin/authorities")
    assert page.status_code == 200
    with rt.db.read() as db:
        cas = hierarchy.list_authorities(db)
    assert any(a.is_root for a in cas) and any(not a.is_root for a in cas)
    with httpx.Client(base_url=live.url) as http:
        for a in cas:
            der = http.get(f"/ca/{a.name}.cer").content  # the certificate as relying parties get it
            row = page.text[page.text.index(f'data-ca="{a.name}"') :].split("</tr>")[0]
            assert hashlib.sha256(der).hexdigest()[:32] in row and a.key_label in row and "密钥存在" in row
            assert (">根<" if a.is_root else ">签发 CA<") in row and a.not_after[:10] in row  # type: ignore[index]
    services = page.text[page.text.index('id="service-keys"') :]
    assert 'data-key="ocsp-' in services and 'data-key="tsa-' in services and "密钥缺失" not in services and "即将到期" not in services
    assert f'id="publish-{cas[-1].name}"' in page.text
    # the profiles' rules, read-only
    profiles = admin.http.get("/admin/profiles")
    assert profiles.status_code == 200 and "<form" not in profiles.text.split("<main>")[1]
    citizen = profiles.text[profiles.text.index('id="profile-citizen"') :].split("</dl>")[0]
    assert "730 天" in citizen and "subject_is_person" in citizen and "digital_signature" in citizen
    seal = profiles.text[profiles.text.index('id="profile-seal"') :].split("</dl>")[0]
    assert "<dd>2</dd>" in seal  # seals need two approvers
    assert "Certificate profiles" in admin.http.get("/admin/profiles?lang=en").text


def test_auditors_read_but_only_ca_administrators_publish(rt, operator) -> None:  # type: ignore[no-untyped-def]
    auditor = operator(Role.AUDITOR, name="审计员甲")
    page = auditor.http.get("/admin/authorities")
    assert page.status_code == 200 and 'id="publish-' not in page.text
    assert auditor.http.get("/admin/profiles").status_code == 200
    officer = operator(Role.REGISTRATION_OFFICER, name="登记员甲")
    assert officer.http.get("/admin/authorities").status_code == 403
    assert officer.http.get("/admin/profiles").status_code == 403


def test_ca_administration_through_the_api(rt, live) -> None:  # type: ignore[no-untyped-def]
    from ca import crl, hierarchy
    from identity import service as identity
    from core.security import Actor

    admin = token_client(rt, live.url, Role.CA_ADMIN)
    auditor = token_client(rt, live.url, Role.AUDITOR)
    overview = auditor.get("/api/v1/ca/overview")
    assert overview.status_code == 200, overview.text
    body = overview.json()
    for a in body["authorities"]:
        der = httpx.get(f"{live.url}/ca/{a['name']}.cer").content
        assert a["sha256"] == hashlib.sha256(der).hexdigest() and a["key_present"] is True and a["state"] == "ok"
    assert {s["kind"] for s in body["services"]} >= {"ocsp"}
    profiles = auditor.get("/api/v1/profiles").json()
    citizen = next(p for p in profiles if p["name"] == "citizen")
    assert citizen["validity_days"] == 730 and "subject_is_person" in [c["name"] for c in citizen["checks"]] and citizen["approvals_required"] == 1
    # CRL publication: CA administrators with acr 2 only; audited
    with rt.db.read() as db:
        issuing = next(a for a in hierarchy.list_authorities(db) if not a.is_root)
        before = crl.latest_crl(db, issuing.name).number  # type: ignore[union-attr]
    assert auditor.post(f"/api/v1/ca/{issuing.name}/crl").status_code == 403
    weak = token_client(rt, live.url, Role.CA_ADMIN, acr="1")
    assert weak.post(f"/api/v1/ca/{issuing.name}/crl").status_code in (401, 403)
    r = admin.post(f"/api/v1/ca/{issuing.name}/crl")
    assert r.status_code == 200, r.text
    numbers = [p["number"] for p in r.json()["published"]]
    assert numbers and min(numbers) > before
    with rt.db.read() as db:
        assert crl.latest_crl(db, issuing.name).number == max(numbers)  # type: ignore[union-attr]
        entry = search(db, action="ca.crl.publish", limit=1)[0]
    assert entry.actor.startswith("operator:")
    assert admin.post("/api/v1/ca/no-such-ca/crl").status_code == 404
    # operators
    with rt.db.transaction() as db:
        person = identity.register_person(rt, db, Actor.cli(), name="接口任命", id_number=unique_id_number())
    r = admin.put(f"/api/v1/operators/{person.id}", json={"roles": ["approver"]})
    assert r.status_code == 200 and r.json()["roles"] == ["approver"], r.text
    assert any(o["person_id"] == person.id and o["roles"] == ["approver"] for o in admin.get("/api/v1/operators").json()["items"])
    assert admin.put(f"/api/v1/operators/{person.id}", json={"roles": ["department_admin"]}).json()["code"] == "admin.department_required"
    assert admin.put(f"/api/v1/operators/{person.id}", json={"roles": ["superuser"]}).status_code == 422
    assert admin.put(f"/api/v1/operators/{person.id}", json={"roles": []}).status_code == 422
    assert auditor.put(f"/api/v1/operators/{person.id}", json={"roles": ["auditor"]}).status_code == 403
    assert auditor.get("/api/v1/operators").status_code == 403
    with rt.db.read() as db:
        entry = search(db, action="identity.operator.set", target=f"person:{person.id}", limit=1)[0]
    assert entry.actor.startswith("operator:") and entry.details["roles"] == ["approver"]


def test_expiry_state_allows_for_short_lived_certificates() -> None:
    from datetime import UTC, datetime

    from admin.ca_overview import _state

    now = datetime(2026, 12, 1, tzinfo=UTC)
    state = lambda nb, na, **kw: _state(nb, na, now=now, **{"active": True, "key_present": True, **kw})  # noqa: E731
    assert state("2026-11-20T00:00:00+00:00", "2026-12-20T00:00:00+00:00") == "ok"  # a 30-day responder with 19 days left
    assert state("2026-11-05T00:00:00+00:00", "2026-12-05T00:00:00+00:00") == "expiring"  # 4 days: its renewal was missed
    assert state("2016-12-01T00:00:00+00:00", "2026-12-20T00:00:00+00:00") == "expiring"  # a CA with under 30 days
    assert state("2016-12-01T00:00:00+00:00", "2026-11-30T00:00:00+00:00") == "expired"
    assert state("2016-12-01T00:00:00+00:00", "2036-11-30T00:00:00+00:00", key_present=False) == "key_missing"
    assert state(None, None) == "awaiting_signature"
    assert state("2016-12-01T00:00:00+00:00", "2036-11-30T00:00:00+00:00", active=False) == "inactive"
