"""Seal administration in the console and the API: the stamp image (upload, validation, preview,
audit, and the image on documents sealed afterwards), clients, disable/enable and certificate
requests through ``/api/v1/seals``."""

from __future__ import annotations

import io
import struct
import subprocess
import zlib
from pathlib import Path

import httpx
import pytest
from PIL import Image

from core.security import Actor, Role
from tests.admin.conftest import open_operator
from tests.factories import unique_uscc

BLUE = (0, 40, 220, 255)


def png(width: int = 96, height: int = 96, colour: tuple[int, int, int, int] = BLUE, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGBA" if fmt == "PNG" else "RGB", (width, height), colour if fmt == "PNG" else colour[:3]).save(out, format=fmt)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A well-formed PNG claiming ``width``×``height`` RGBA pixels but holding almost no pixel data
    (a decompression-bomb probe when large; a truncated image when small)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def token_client(rt, base_url: str, *roles: Role, department_id: str | None = None, acr: str = "2") -> httpx.Client:  # type: ignore[no-untyped-def]
    from admin import console_client
    from auth_service.oidc.access_token import issue_access_token

    op = open_operator(rt, base_url, roles, name="接口部门管理员", department_id=department_id)
    op.http.close()
    with rt.db.read() as db:
        client_id = console_client.registration(rt, db).client_id
    token = issue_access_token(rt, client_id=client_id, subject=op.person_id, scope="openid", acr=acr)[0]
    return httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {token}"}, timeout=60)


@pytest.fixture
def dept_seal(rt):  # type: ignore[no-untyped-def]
    from identity import service as identity
    from signing import service as signing_service

    signing_service.tsa_authority(rt)
    with rt.db.transaction() as db:
        dept = identity.register_org(rt, db, Actor.cli(), name="省自然资源厅", uscc=unique_uscc(), type="government")
    with rt.db.transaction() as db:
        seal = signing_service.create_seal(rt, db, Actor.cli(), name="不动产登记专用章", department=dept.id)
    return dept, seal


def _images_in(pdf: bytes, tmp_path: Path) -> list[Image.Image]:
    """Every image in the PDF, extracted by poppler (an independent reader)."""
    (tmp_path / "doc.pdf").write_bytes(pdf)
    subprocess.run(["pdfimages", "-png", str(tmp_path / "doc.pdf"), str(tmp_path / "img")], check=True, capture_output=True)
    return [Image.open(p).convert("RGB") for p in sorted(tmp_path.glob("img-*.png"))]


def _bluish(img: Image.Image) -> bool:
    r, g, b = img.resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    return b > 150 and r < 80


def _seal_a_pdf(rt, seal_id: str) -> bytes:  # type: ignore[no-untyped-def]
    from signing import pades
    from signing import service as signing_service

    pdf = (Path(__file__).resolve().parents[1] / "data" / "signing" / "licence.pdf").read_bytes()
    with rt.db.transaction() as db:
        return signing_service.seal_pdf(rt, db, Actor.cli(), seal_id=seal_id, pdf=pdf, options=pades.PadesOptions(level="B-B")).pdf


def test_console_replaces_the_stamp_image_and_later_seals_show_it(rt, operator, dept_seal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from core.audit import search

    dept, seal = dept_seal
    (tmp_path / "a").mkdir()
    before = _images_in(_seal_a_pdf(rt, seal.id), tmp_path / "a")
    assert before and not any(_bluish(i) for i in before)  # the generated red round stamp
    admin = operator(Role.DEPARTMENT_ADMIN, name="厅印章管理员", department_id=dept.id)
    page = admin.http.get(f"/admin/seals/{seal.id}")
    assert f'action="/admin/seals/{seal.id}/image"' in page.text and 'enctype="multipart/form-data"' in page.text and 'data-preview="new-image-preview"' in page.text
    old = admin.http.get(f"/admin/seals/{seal.id}/image")
    r = admin.post(f"/admin/seals/{seal.id}/image", files={"image": ("stamp.png", png(), "image/png")})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/seals/{seal.id}?done=image", r.text[:400]
    assert "印章图像已更换" in admin.http.get(r.headers["location"]).text
    new = admin.http.get(f"/admin/seals/{seal.id}/image")
    assert new.status_code == 200 and new.headers["content-type"] == "image/png" and new.headers["etag"] != old.headers["etag"]
    assert _bluish(Image.open(io.BytesIO(new.content)).convert("RGB"))
    assert admin.http.get(f"/admin/seals/{seal.id}/image", headers={"if-none-match": new.headers["etag"]}).status_code == 304
    # the next sealed document carries the new image (the per-process seal cache noticed)
    (tmp_path / "b").mkdir()
    after = _images_in(_seal_a_pdf(rt, seal.id), tmp_path / "b")
    assert any(_bluish(i) for i in after)
    with rt.db.read() as db:
        entries = search(db, action="signing.seal.image", target=f"seal:{seal.id}")
    assert len(entries) == 1 and entries[0].actor == admin.ref and entries[0].details["sha256"] != entries[0].details["previous_sha256"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not an image at all", 400, "signing.image_unreadable"),
        (png(fmt="JPEG"), 415, "signing.image_not_png"),
        (png(16, 16), 422, "signing.image_size"),
        (png(5000, 40), 422, "signing.image_size"),
        (png_header_only(30000, 30000), 422, "signing.image_size"),
        (png_header_only(64, 64), 400, "signing.image_unreadable"),  # no pixel data
        (b"\x89PNG\r\n\x1a\n" + b"\0" * (2 * 1024 * 1024), 413, "admin.image_too_large"),
    ],
    ids=["text", "jpeg", "tiny", "too-wide", "bomb", "truncated", "too-big"],
)
def test_bad_stamp_images_are_4xx_problems_in_console_and_api(rt, live, operator, dept_seal, body: bytes, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    from signing import service as signing_service

    dept, seal = dept_seal
    with rt.db.read() as db:
        original = signing_service.seal_image(db, seal.id)
    admin = operator(Role.DEPARTMENT_ADMIN, department_id=dept.id)
    page = admin.post(f"/admin/seals/{seal.id}/image", files={"image": ("x.png", body, "image/png")})
    assert page.status_code == status and "text/html" in page.headers["content-type"], page.text[:300]
    api = token_client(rt, live.url, Role.DEPARTMENT_ADMIN, department_id=dept.id)
    r = api.put(f"/api/v1/seals/{seal.id}/image", content=body, headers={"content-type": "image/png"})
    assert r.status_code == status and r.headers["content-type"] == "application/problem+json" and r.json()["code"] == code, r.text[:300]
    with rt.db.read() as db:
        assert signing_service.seal_image(db, seal.id) == original


def test_seal_image_is_confined_to_the_department_and_needs_csrf(rt, live, operator, dept_seal) -> None:  # type: ignore[no-untyped-def]
    from identity import service as identity

    dept, seal = dept_seal
    with rt.db.transaction() as db:
        elsewhere = identity.register_org(rt, db, Actor.cli(), name="别的厅", uscc=unique_uscc(), type="government")
    other = operator(Role.DEPARTMENT_ADMIN, department_id=elsewhere.id)
    assert other.post(f"/admin/seals/{seal.id}/image", files={"image": ("s.png", png(), "image/png")}).status_code == 403
    own = operator(Role.DEPARTMENT_ADMIN, department_id=dept.id)
    no_csrf = own.http.post(f"/admin/seals/{seal.id}/image", files={"image": ("s.png", png(), "image/png")})
    assert no_csrf.status_code == 403 and "console.csrf" not in no_csrf.headers.get("location", "")
    foreign_api = token_client(rt, live.url, Role.DEPARTMENT_ADMIN, department_id=elsewhere.id)
    r = foreign_api.put(f"/api/v1/seals/{seal.id}/image", content=png(), headers={"content-type": "image/png"})
    assert r.status_code == 403 and r.json()["code"] == "admin.other_department"
    assert foreign_api.get(f"/api/v1/seals/{seal.id}/image").status_code == 403
    assert foreign_api.get(f"/api/v1/seals/{seal.id}").status_code == 403  # nor its details
    assert seal.id not in [s["id"] for s in foreign_api.get("/api/v1/seals").json()]
    assert foreign_api.get("/api/v1/seals", params={"department": dept.id}).status_code == 403
    api = token_client(rt, live.url, Role.DEPARTMENT_ADMIN, department_id=dept.id)
    assert [s["id"] for s in api.get("/api/v1/seals").json()] == [seal.id] and api.get(f"/api/v1/seals/{seal.id}").status_code == 200
    r = api.put(f"/api/v1/seals/{seal.id}/image", content=png(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 415 and r.json()["code"] == "admin.image_media_type"
    weak = token_client(rt, live.url, Role.DEPARTMENT_ADMIN, department_id=dept.id, acr="1")
    assert weak.put(f"/api/v1/seals/{seal.id}/image", content=png(), headers={"content-type": "image/png"}).status_code in (401, 403)


def test_seal_administration_through_the_api(rt, live, dept_seal) -> None:  # type: ignore[no-untyped-def]
    from auth_service import service as sso
    from core.audit import search

    dept, seal = dept_seal
    api = token_client(rt, live.url, Role.DEPARTMENT_ADMIN, department_id=dept.id)
    r = api.put(f"/api/v1/seals/{seal.id}/image", content=png(), headers={"content-type": "image/png"})
    assert r.status_code == 200 and r.json()["id"] == seal.id, r.text
    got = api.get(f"/api/v1/seals/{seal.id}/image")
    assert got.status_code == 200 and _bluish(Image.open(io.BytesIO(got.content)).convert("RGB"))
    # a department system of its own department may be allowed to use the seal; another's may not
    with rt.db.transaction() as db:
        mine, _ = sso.register_client(rt, db, Actor.cli(), name="登记系统", grant_types=["client_credentials"], scopes=[f"seal:{seal.id}"], department_id=dept.id)
        theirs, _ = sso.register_client(rt, db, Actor.cli(), name="别人的系统", grant_types=["client_credentials"], scopes=["openid"])
    assert api.post(f"/api/v1/seals/{seal.id}/clients", json={"client_id": theirs.client_id}).status_code == 403
    r = api.post(f"/api/v1/seals/{seal.id}/clients", json={"client_id": mine.client_id})
    assert r.status_code == 200 and mine.client_id in r.json()["clients"]
    # disable at once, then enable again
    assert api.post(f"/api/v1/seals/{seal.id}/status", json={"active": False}).json()["status"] == "disabled"
    assert api.post(f"/api/v1/seals/{seal.id}/status", json={"active": True}).json()["status"] == "active"
    # certificate actions are requests for two approvers
    r = api.post(f"/api/v1/seals/{seal.id}/certificate-requests", json={"type": "revocation", "reason": "keyCompromise", "comment": "印章钥匙遗失"})
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["type"] == "revocation" and req["target_serial"] == seal.cert_serial and req["required_approvals"] == 2 and req["state"] == "submitted"
    assert api.post(f"/api/v1/seals/{seal.id}/certificate-requests", json={"type": "renewal"}).status_code == 422
    # a new seal for the department (two approvers make its key)
    r = api.post("/api/v1/seals", json={"name": "第二枚印章", "clients": [mine.client_id]})
    assert r.status_code == 201 and r.json()["profile"] == "seal" and r.json()["subject_id"] == dept.id and r.json()["required_approvals"] == 2, r.text
    assert api.post("/api/v1/seals", json={"name": "x", "image_png_base64": "!!"}).status_code == 422
    with rt.db.read() as db:
        actions = {e.action for e in search(db, target=f"seal:{seal.id}")}
    assert {"signing.seal.image", "signing.seal.allow_client", "signing.seal.disable", "signing.seal.enable"} <= actions
