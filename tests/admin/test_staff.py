"""Department administrators enrol their own department's staff (one at a time or a list), in the
console and the API; the registration desk's bulk enrolment through the API. Staff certificates are
still approved by an approver, and carry the department (checked in the issued certificate)."""

from __future__ import annotations

import csv
import io
import time

from cryptography import x509
from cryptography.x509.oid import NameOID

from core.security import Actor, Role
from tests.admin.test_pages import location_id, make_csr
from tests.admin.test_seals import token_client
from tests.factories import unique_id_number, unique_uscc


def _department(rt, name: str, type: str = "government"):  # type: ignore[no-untyped-def]
    from identity import service as identity

    with rt.db.transaction() as db:
        return identity.register_org(rt, db, Actor.cli(), name=name, uscc=unique_uscc(), type=type)


def _csv(*rows: tuple[str, str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "id_number", "phone", "csr"])
    for name, id_number in rows:
        writer.writerow([name, id_number, "", make_csr()])
    return out.getvalue().encode("utf-8")


def _wait(get) -> dict:  # type: ignore[no-untyped-def,type-arg]
    deadline = time.time() + 90
    while True:
        job = get()
        if job["state"] in ("finished", "failed") or time.time() > deadline:
            return job
        time.sleep(0.2)


def test_department_administrator_enrols_own_staff_in_the_console(rt, operator) -> None:  # type: ignore[no-untyped-def]
    from ca import service as ca_service
    from core.audit import search
    from identity import service as identity

    dept = _department(rt, "省人力资源和社会保障厅")
    other = _department(rt, "省交通运输厅")
    admin = operator(Role.DEPARTMENT_ADMIN, name="人社厅管理员", department_id=dept.id)
    approver = operator(Role.APPROVER, name="人社审批")
    page = admin.http.get("/admin/staff")
    assert page.status_code == 200 and dept.name in page.text and 'action="/admin/staff"' in page.text and 'name="department"' not in page.text
    id_number = unique_id_number()
    r = admin.post("/admin/staff", {"name": "王科员", "id_number": id_number, "title": "科员", "csr": make_csr()})
    assert r.status_code == 303 and r.headers["location"] == "/admin/staff?done=staff", r.text[:400]
    listing = admin.http.get("/admin/staff?done=staff").text
    assert "工作人员已登记" in listing and "王科员" in listing and id_number not in listing and id_number[:6] + "********" in listing
    with rt.db.read() as db:
        person = identity.find_person_by_id_number(rt, db, id_number)
        assert person is not None and [m.org_id for m in identity.memberships_of(db, person.id)] == [dept.id]
        from admin import service

        request = service.list_requests(db, subject_id=person.id).items[0]
    assert request.profile == "staff" and request.state == "submitted" and request.created_by == admin.ref
    # the administrator's own department only: naming another is refused, and so is a foreign admin's view
    r = admin.post("/admin/staff", {"name": "越权", "id_number": unique_id_number(), "csr": make_csr(), "department": other.uscc})
    assert r.status_code == 403
    foreign = operator(Role.DEPARTMENT_ADMIN, name="交通厅管理员", department_id=other.id)
    assert "王科员" not in foreign.http.get("/admin/staff").text
    bad = admin.post("/admin/staff", {"name": "坏请求", "id_number": unique_id_number(), "csr": "not a csr"})
    assert bad.status_code in (400, 422) and "坏请求" in bad.text  # the form comes back filled in, with the problem
    # an approver decides; the issued staff certificate names the department
    assert approver.post(f"/admin/requests/{request.id}/approve").headers["location"].endswith("done=done")
    with rt.db.read() as db:
        serial = service.get_request(db, request.id).request.result_serial
        cert = x509.load_der_x509_certificate(ca_service.get_certificate(db, serial).der)  # type: ignore[arg-type]
    assert dept.name in [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] + [
        a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    ], cert.subject.rfc4514_string()
    assert serial[:16] in admin.http.get("/admin/staff").text  # type: ignore[index]
    with rt.db.read() as db:
        assert search(db, action="identity.membership.add", target=f"person:{person.id}", limit=1)[0].actor == admin.ref


def test_staff_list_upload_and_job_visibility(rt, operator) -> None:  # type: ignore[no-untyped-def]
    dept = _department(rt, "省卫生健康委员会")
    other = _department(rt, "省教育厅")
    admin = operator(Role.DEPARTMENT_ADMIN, name="卫健委管理员", department_id=dept.id)
    body = _csv(("名单甲", unique_id_number()), ("名单乙", "110101199001011230"))
    r = admin.http.post("/admin/staff/bulk", data={"csrf_token": admin.csrf}, files={"file": ("staff.csv", body, "text/csv")})
    job_id = location_id(r, "/admin/bulk")
    job = _wait(lambda: admin.http.get(f"/admin/bulk/{job_id}/progress").json())
    assert job == {"state": "finished", "total": 2, "processed": 2, "failed": 1}
    page = admin.http.get(f"/admin/bulk/{job_id}")
    assert page.status_code == 200 and "名单甲" in page.text and "identity.invalid_id_number" in page.text
    assert "名单甲" in admin.http.get("/admin/staff").text
    foreign = operator(Role.DEPARTMENT_ADMIN, name="教育厅管理员", department_id=other.id)
    assert foreign.http.get(f"/admin/bulk/{job_id}").status_code == 403
    assert foreign.http.get(f"/admin/bulk/{job_id}/progress").status_code == 403
    # a registration-desk job is not a department administrator's to read
    officer = operator(Role.REGISTRATION_OFFICER, name="名单受理")
    desk = location_id(officer.http.post("/admin/bulk", data={"csrf_token": officer.csrf, "profile": "citizen"}, files={"file": ("d.csv", _csv(("柜台", unique_id_number())), "text/csv")}), "/admin/bulk")
    assert admin.http.get(f"/admin/bulk/{desk}").status_code == 403


def test_enrolment_through_the_api(rt, live) -> None:  # type: ignore[no-untyped-def]
    dept = _department(rt, "省生态环境厅")
    other = _department(rt, "省水利厅")
    admin = token_client(rt, live.url, Role.DEPARTMENT_ADMIN, department_id=dept.id)
    id_number = unique_id_number()
    r = admin.post("/api/v1/staff", json={"name": "接口科员", "id_number": id_number, "title": "主任科员", "csr": make_csr()})
    assert r.status_code == 201 and r.json()["profile"] == "staff" and r.json()["state"] == "submitted", r.text
    staff = admin.get("/api/v1/staff").json()
    assert staff["department_id"] == dept.id and [s["name"] for s in staff["items"]] == ["接口科员"] and id_number not in str(staff)
    assert admin.post("/api/v1/staff", json={"name": "越权", "id_number": unique_id_number(), "csr": make_csr(), "department": other.id}).status_code == 403
    assert admin.get("/api/v1/staff", params={"department": other.id}).status_code == 403
    # a staff list
    r = admin.post("/api/v1/staff/bulk", content=_csv(("接口名单", unique_id_number())), headers={"content-type": "text/csv"})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    job = _wait(lambda: admin.get(f"/api/v1/bulk/{job_id}").json())
    assert job["state"] == "finished" and job["failed"] == 0 and job["department_id"] == dept.id and job["profile"] == "staff"
    assert admin.post("/api/v1/staff/bulk", content=b"name,id_number\n", headers={"content-type": "application/json"}).status_code == 415
    assert token_client(rt, live.url, Role.DEPARTMENT_ADMIN, department_id=other.id).get(f"/api/v1/bulk/{job_id}").status_code == 403
    # the registration desk's bulk enrolment, and an approver approving the job
    officer = token_client(rt, live.url, Role.REGISTRATION_OFFICER)
    approver = token_client(rt, live.url, Role.APPROVER)
    r = officer.post("/api/v1/bulk", params={"profile": "citizen"}, content=_csv(("柜台接口", unique_id_number())), headers={"content-type": "text/csv"})
    assert r.status_code == 202, r.text
    desk = r.json()["id"]
    assert _wait(lambda: officer.get(f"/api/v1/bulk/{desk}").json())["state"] == "finished"
    assert admin.get(f"/api/v1/bulk/{desk}").status_code == 403
    assert admin.post("/api/v1/bulk", content=_csv(("x", unique_id_number())), headers={"content-type": "text/csv"}).status_code == 403
    assert approver.post(f"/api/v1/bulk/{desk}/approve").json() == {"approved": 1, "skipped": 0, "failed": 0}
    assert officer.post("/api/v1/bulk", params={"profile": "root"}, content=_csv(("x", unique_id_number())), headers={"content-type": "text/csv"}).status_code == 422
    # an enterprise is not a department: no staff certificates for it
    firm = _department(rt, "某某科技有限公司", type="enterprise")
    ca_admin = token_client(rt, live.url, Role.CA_ADMIN)
    r = ca_admin.post("/api/v1/staff", json={"name": "企业员工", "id_number": unique_id_number(), "csr": make_csr(), "department": firm.id})
    assert r.status_code == 422 and r.json()["code"] == "admin.not_a_department"
