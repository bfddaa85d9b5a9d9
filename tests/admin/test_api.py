"""The admin REST API over real HTTP with real access tokens (signed in the HSM, verified by the
platform's verifier): registry, requests with four-eyes, the audited reveal, the audit log."""

from __future__ import annotations

import httpx
import pytest

from core.security import Actor, Role
from tests.admin.conftest import open_operator
from tests.admin.test_pages import make_csr
from tests.factories import unique_id_number, unique_phone


class Api:
    def __init__(self, rt, base_url: str) -> None:  # type: ignore[no-untyped-def]
        self.rt, self.base = rt, base_url

    def operator(self, *roles: Role, acr: str = "2", name: str = "接口操作员") -> httpx.Client:
        from admin import console_client
        from auth_service.oidc.access_token import issue_access_token

        op = open_operator(self.rt, self.base, roles, name=name)
        op.http.close()
        with self.rt.db.read() as db:
            client_id = console_client.registration(self.rt, db).client_id
        token = issue_access_token(self.rt, client_id=client_id, subject=op.person_id, scope="openid", acr=acr)[0]
        client = httpx.Client(base_url=self.base, headers={"authorization": f"Bearer {token}"}, timeout=60)
        client.person_id = op.person_id  # type: ignore[attr-defined]
        return client

    def department_system(self, scope: str) -> httpx.Client:
        from auth_service import service as sso
        from auth_service.oidc.access_token import issue_access_token

        with self.rt.db.transaction() as db:
            client, _ = sso.register_client(self.rt, db, Actor.cli(), name=f"automation {scope}", grant_types=["client_credentials"], scopes=[scope])
        token = issue_access_token(self.rt, client_id=client.client_id, subject=client.client_id, scope=scope)[0]
        return httpx.Client(base_url=self.base, headers={"authorization": f"Bearer {token}"}, timeout=60)


@pytest.fixture
def api(rt, live) -> Api:  # type: ignore[no-untyped-def]
    return Api(rt, live.url)


def problem(resp: httpx.Response) -> str:
    assert resp.headers["content-type"] == "application/problem+json", resp.text[:300]
    return resp.json()["code"]


def test_registry_and_request_workflow_through_the_api(rt, api: Api) -> None:  # type: ignore[no-untyped-def]
    from core.audit import search

    officer = api.operator(Role.REGISTRATION_OFFICER)
    approver = api.operator(Role.APPROVER)
    id_number, phone = unique_id_number(), unique_phone()
    r = officer.post("/api/v1/persons", json={"name": "接口市民", "id_number": id_number, "phone": phone, "evidence": {"document_type": "resident_id_card", "document_number": id_number}})
    assert r.status_code == 201, r.text
    person = r.json()
    assert person["id_number_masked"] == id_number[:6] + "********" + id_number[-4:] and id_number not in r.text and phone not in r.text
    assert r.headers["location"] == f"/api/v1/persons/{person['id']}"
    again = officer.post("/api/v1/persons", json={"name": "接口市民", "id_number": id_number})
    assert again.status_code == 200 and again.json()["id"] == person["id"] and again.json()["created"] is False
    assert problem(officer.post("/api/v1/persons", json={"name": "x", "id_number": "110101199001011230"})) == "identity.invalid_id_number"
    assert problem(officer.post("/api/v1/persons", json={"name": "x", "id_number": id_number, "admin": True})) == "request.invalid_fields"
    assert officer.post("/api/v1/persons", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422

    found = officer.post("/api/v1/persons/search", json={"q": id_number}).json()
    assert [p["id"] for p in found["items"]] == [person["id"]] and id_number not in str(found)
    assert [p["id"] for p in officer.post("/api/v1/persons/search", json={"q": phone}).json()["items"]] == [person["id"]]
    # full ID and phone numbers never travel in a URL (access logs): the GET search refuses them
    for number in (id_number, phone):
        refused = officer.get("/api/v1/persons", params={"q": number})
        assert refused.status_code == 422 and problem(refused) == "admin.personal_number_in_url"
    masked = id_number[:6] + "********" + id_number[-4:]
    assert person["id"] in [p["id"] for p in officer.get("/api/v1/persons", params={"q": masked}).json()["items"]]
    page = officer.get("/api/v1/persons", params={"limit": 1}).json()
    assert len(page["items"]) == 1 and page["total"] >= 1 and page["limit"] == 1
    assert officer.get("/api/v1/persons", params={"limit": 0}).status_code == 422
    detail = officer.get(f"/api/v1/persons/{person['id']}").json()
    assert detail["evidence"][0]["number_masked"].startswith(id_number[:6]) and id_number not in str(detail)

    r = officer.post("/api/v1/requests", json={"type": "new", "subject_kind": "person", "subject_id": person["id"], "profile": "citizen", "csr": make_csr()})
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["state"] == "submitted" and req["required_approvals"] == 1
    assert problem(officer.post(f"/api/v1/requests/{req['id']}/approve")) == "auth.insufficient_role"
    both = api.operator(Role.REGISTRATION_OFFICER, Role.APPROVER)
    own = both.post("/api/v1/requests", json={"type": "new", "subject_kind": "person", "subject_id": person["id"], "profile": "citizen", "csr": make_csr()}).json()
    assert problem(both.post(f"/api/v1/requests/{own['id']}/approve")) == "admin.four_eyes"
    awaiting = approver.get("/api/v1/requests", params={"awaiting_me": "true", "limit": 500}).json()
    assert req["id"] in [x["id"] for x in awaiting["items"]]
    done = approver.post(f"/api/v1/requests/{req['id']}/approve", json={"comment": "核验无误"})
    assert done.status_code == 200 and done.json()["state"] == "done" and done.json()["result_serial"], done.text
    serial = done.json()["result_serial"]
    assert approver.get(f"/api/v1/certificates/{serial}").json()["status"] == "issued"
    shown = officer.get(f"/api/v1/requests/{req['id']}").json()
    assert [e["event"] for e in shown["history"]] == ["created", "submitted", "approved", "done"]
    assert problem(approver.post(f"/api/v1/requests/{req['id']}/approve")) == "admin.request_not_submitted"
    assert problem(officer.get("/api/v1/requests", params={"state": "bogus"})) == "admin.invalid_state"
    assert officer.get("/api/v1/requests", params={"state": "done", "serial": serial}).json()["total"] == 1
    assert problem(officer.get("/api/v1/requests/nope")) == "admin.request_not_found"
    # a revocation request, approved: the certificate is revoked
    rv = officer.post("/api/v1/requests", json={"type": "revocation", "serial": serial, "reason": "superseded"}).json()
    assert approver.post(f"/api/v1/requests/{rv['id']}/approve").json()["state"] == "done"
    assert approver.get(f"/api/v1/certificates/{serial}").json()["status"] == "revoked"
    with rt.db.read() as db:
        actions = [e.action for e in search(db, target=f"request:{req['id']}")]
    assert {"admin.request.create", "admin.request.approve", "admin.request.execute"} <= set(actions)


def test_writes_need_acr_2_and_reveal_needs_its_own_permission(rt, api: Api) -> None:  # type: ignore[no-untyped-def]
    from core.audit import search

    weak = api.operator(Role.REGISTRATION_OFFICER, acr="1")
    r = weak.post("/api/v1/persons", json={"name": "弱认证", "id_number": unique_id_number()})
    assert r.status_code == 403 and problem(r) == "auth.insufficient_acr"
    assert weak.get("/api/v1/persons").status_code == 200  # reading does not need the second factor
    officer = api.operator(Role.REGISTRATION_OFFICER)
    id_number = unique_id_number()
    person = officer.post("/api/v1/persons", json={"name": "查看对象", "id_number": id_number}).json()
    assert problem(officer.post(f"/api/v1/persons/{person['id']}/reveal", json={"reason": "x"})) == "auth.insufficient_role"
    revealer = api.operator(Role.PII_REVEAL)
    assert problem(revealer.post(f"/api/v1/persons/{person['id']}/reveal", json={"reason": " "})) == "identity.reveal_reason_required"
    r = revealer.post(f"/api/v1/persons/{person['id']}/reveal", json={"reason": "法院调查令"})
    assert r.status_code == 200 and r.json()["id_number"] == id_number and r.headers["cache-control"] == "no-store"
    with rt.db.read() as db:
        entry = search(db, action="identity.person.reveal", target=f"person:{person['id']}", limit=1)[0]
    assert entry.details["reason"] == "法院调查令" and entry.actor == f"operator:{revealer.person_id}"  # type: ignore[attr-defined]


def test_department_automation_uses_scopes(api: Api) -> None:
    writer = api.department_system("registry:write")
    r = writer.post("/api/v1/persons", json={"name": "批量导入", "id_number": unique_id_number()})
    assert r.status_code == 201, r.text
    assert problem(writer.post("/api/v1/requests/x/approve")) == "auth.insufficient_role"  # approvals are for people
    reader = api.department_system("registry:read")
    assert reader.get("/api/v1/persons").status_code == 200
    assert problem(reader.post("/api/v1/persons", json={"name": "x", "id_number": unique_id_number()})) == "auth.insufficient_role"


def test_audit_through_the_api(rt, api: Api) -> None:  # type: ignore[no-untyped-def]
    auditor = api.operator(Role.AUDITOR)
    first = auditor.get("/api/v1/audit", params={"limit": 5}).json()
    assert len(first["items"]) == 5 and first["next_before"] == first["items"][-1]["seq"]
    second = auditor.get("/api/v1/audit", params={"limit": 5, "before": first["next_before"]}).json()
    assert max(e["seq"] for e in second["items"]) < min(e["seq"] for e in first["items"])
    only = auditor.get("/api/v1/audit", params={"action": "identity.person.register", "limit": 3}).json()
    assert only["items"] and all(e["action"] == "identity.person.register" for e in only["items"])
    seq = first["items"][0]["seq"]
    assert auditor.get(f"/api/v1/audit/{seq}").json()["hash"] == first["items"][0]["hash"]
    assert problem(auditor.get("/api/v1/audit/999999999")) == "admin.audit_entry_not_found"
    # beyond a 64-bit integer (found by schemathesis: SQLite raised OverflowError → 500)
    assert problem(auditor.get("/api/v1/audit/86139926008048877568")) == "request.invalid_fields"
    assert problem(auditor.get("/api/v1/audit", params={"before": 86139926008048877568})) == "request.invalid_fields"
    assert problem(auditor.get("/api/v1/audit", params={"since": "last week"})) == "admin.bad_date"
    verified = auditor.post("/api/v1/audit/verify")
    assert verified.status_code == 200 and verified.json()["ok"] is True and verified.json()["entries"] > 0
    officer = api.operator(Role.REGISTRATION_OFFICER)
    assert problem(officer.get("/api/v1/audit")) == "auth.insufficient_role"


def test_the_api_is_described_by_openapi(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    for path in ("/api/v1/persons", "/api/v1/orgs", "/api/v1/requests", "/api/v1/requests/{request_id}/approve", "/api/v1/audit", "/api/v1/audit/verify"):
        assert path in doc["paths"], path
    assert not [p for p in doc["paths"] if p.startswith("/admin")]  # the console's HTML pages are not API


def test_department_clients_through_the_api(rt, api: Api) -> None:  # type: ignore[no-untyped-def]
    from identity import service as identity
    from tests.factories import unique_uscc

    with rt.db.transaction() as db:
        dept = identity.register_org(rt, db, Actor.cli(), name="省教育厅", uscc=unique_uscc(), type="government")
        other = identity.register_org(rt, db, Actor.cli(), name="省卫健委", uscc=unique_uscc(), type="government")
    admin_op = open_operator(rt, api.base, {Role.DEPARTMENT_ADMIN}, name="教育管理员", department_id=dept.id)
    admin_op.http.close()
    from admin import console_client
    from auth_service.oidc.access_token import issue_access_token

    with rt.db.read() as db:
        cid = console_client.registration(rt, db).client_id
    token = issue_access_token(rt, client_id=cid, subject=admin_op.person_id, scope="openid", acr="2")[0]
    admin = httpx.Client(base_url=api.base, headers={"authorization": f"Bearer {token}"}, timeout=60)
    r = admin.post("/api/v1/clients", json={"name": "学籍系统", "redirect_uris": ["https://xj.example.gov.cn/cb"]})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store", r.text
    created = r.json()
    assert created["department_id"] == dept.id and len(created["client_secret"]) >= 32
    shown = admin.get(f"/api/v1/clients/{created['client_id']}").json()
    assert "client_secret" not in shown
    rotated = admin.post(f"/api/v1/clients/{created['client_id']}/secret").json()
    assert rotated["client_secret"] != created["client_secret"]
    assert created["client_id"] in [c["client_id"] for c in admin.get("/api/v1/clients").json()["items"]]
    assert problem(admin.post("/api/v1/clients", json={"name": "越权", "department": other.uscc, "redirect_uris": ["https://a.example/cb"]})) == "admin.other_department"
    assert problem(admin.post("/api/v1/clients", json={"name": "坏", "redirect_uris": ["http://evil.example/cb"]})).startswith("sso.")
    assert problem(admin.post("/api/v1/clients", json={"name": "坏", "grant_types": ["password"]})) == "request.invalid_fields"
    assert admin.post(f"/api/v1/clients/{created['client_id']}/disable").json()["active"] is False
    ca_admin = api.operator(Role.CA_ADMIN)
    assert ca_admin.get(f"/api/v1/clients/{created['client_id']}").status_code == 200
    outsider = api.operator(Role.APPROVER)
    assert problem(outsider.get("/api/v1/clients")) == "auth.insufficient_role"
    admin.close()


def test_the_console_own_client_is_not_managed_through_the_api(rt, api: Api) -> None:  # type: ignore[no-untyped-def]
    from admin import console_client

    with rt.db.read() as db:
        own = console_client.registration(rt, db).client_id
    ca_admin = api.operator(Role.CA_ADMIN)
    assert own not in str(ca_admin.get("/api/v1/clients").json())
    assert problem(ca_admin.post(f"/api/v1/clients/{own}/disable")) == "admin.first_party_client"
    assert problem(ca_admin.post(f"/api/v1/clients/{own}/secret")) == "admin.first_party_client"
