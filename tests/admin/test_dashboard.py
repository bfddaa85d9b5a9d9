"""The dashboard's daily OCSP/verification traffic: counted in memory on the request path, written
per day by a flusher (``core.traffic``), summed over processes, charted next to issuance."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, timedelta
from pathlib import Path

import httpx

from admin.web.dashboard import short
from core import clock, traffic
from core.security import Role

LICENCE = Path(__file__).resolve().parents[1] / "data" / "signing" / "licence.pdf"


def _today() -> str:
    return clock.now().astimezone(UTC).date().isoformat()


def test_counts_are_written_per_day_and_add_up_across_processes(rt) -> None:  # type: ignore[no-untyped-def]
    kind = "test-" + secrets.token_hex(4)
    first, second = traffic.Tally(), traffic.Tally()  # two worker processes' tallies, one database
    first.add(kind, 5)
    second.add(kind, 7)
    for tally in (first, second):
        pending = tally.take()
        with rt.db.transaction() as db:
            for k, n in pending.items():
                traffic._upsert(db, _today(), k, n)
    assert first.take() == {} and second.take() == {}  # taken means forgotten
    with rt.db.read() as db:
        found = traffic.daily(db, kinds=[kind], since=clock.now().date() - timedelta(days=1))
    assert found == {kind: {_today(): 12}}


def test_a_watched_running_total_is_flushed_by_its_growth(rt) -> None:  # type: ignore[no-untyped-def]
    class Responder:
        answered = 40

    st = Responder()
    tally = traffic.Tally()
    tally.watched["w"] = (lambda: st.answered, st.answered)
    assert tally.take() == {}
    st.answered += 3
    tally.add("w", 2)  # counted directly too: both add up
    assert tally.take() == {"w": 5}
    assert tally.take() == {}
    st.answered = 4  # the responder state was made again (reload): its new total is all new
    assert tally.take() == {"w": 4}
    tally.give_back({"w": 4})  # a failed write is kept for the next flush
    assert tally.take() == {"w": 4}


def _dashboard_counts(op) -> dict[str, int]:  # type: ignore[no-untyped-def]
    page = op.http.get("/admin")
    assert page.status_code == 200
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(?:<a [^>]*>)?(\d+)', page.text)}


def test_ocsp_and_verification_traffic_reach_the_dashboard(rt, live, operator) -> None:  # type: ignore[no-untyped-def]
    viewer = operator(Role.AUDITOR, name="看板")
    before = _dashboard_counts(viewer)
    with httpx.Client(base_url=live.url, timeout=30) as http:
        for _ in range(3):  # real requests to the responder (malformed: answered without the database)
            r = http.post("/ocsp", content=b"\x30\x03\x02\x01\x01", headers={"content-type": "application/ocsp-request"})
            assert r.status_code == 200 and r.headers["content-type"] == "application/ocsp-response"
        r = http.post("/verify", files={"file": ("licence.pdf", LICENCE.read_bytes(), "application/pdf")})
        assert r.status_code == 200, r.text[:300]
    after = _dashboard_counts(viewer)
    assert after["ocsp"] >= before["ocsp"] + 3 and after["verifications"] >= before["verifications"] + 1
    with rt.db.read() as db:
        stored = traffic.daily(db, kinds=traffic.KINDS, since=clock.now().date())
    assert stored["ocsp"][_today()] == after["ocsp"] and stored["verifications"][_today()] == after["verifications"]
    page = viewer.http.get("/admin").text
    chart = page[page.index('id="chart-traffic"') :]
    assert 'class="bar-ocsp_responses"' in chart and f"{_today()} · OCSP 响应: {after['ocsp']}" in chart
    assert f"{_today()} · 签章验证: {after['verifications']}" in chart
    english = viewer.http.get("/admin?lang=en").text
    assert "OCSP and verification traffic per day" in english and f"{_today()} · OCSP responses: " in english


def test_axis_labels_stay_short() -> None:
    assert [short(v) for v in (0, 950, 9_999, 12_000, 250_000, 3_400_000)] == ["0", "950", "9999", "12k", "250k", "3.4M"]


def test_the_dashboard_figures_in_the_api(rt, live) -> None:  # type: ignore[no-untyped-def]
    from tests.admin.test_seals import token_client

    auditor = token_client(rt, live.url, Role.AUDITOR)
    before = auditor.get("/api/v1/dashboard").json()
    with httpx.Client(base_url=live.url, timeout=30) as http:
        http.post("/ocsp", content=b"\x30\x03\x02\x01\x01", headers={"content-type": "application/ocsp-request"})
    after = auditor.get("/api/v1/dashboard")
    assert after.status_code == 200
    body = after.json()
    assert len(body["days"]) == 30 and body["days"][-1]["day"] == _today() and set(body["days"][-1]) == {"day", "issued", "revoked", "ocsp", "verifications"}
    assert body["counts"]["ocsp_today"] >= before["counts"]["ocsp_today"] + 1 == before["days"][-1]["ocsp"] + 1
    assert body["days"][-1]["ocsp"] == body["counts"]["ocsp_today"]
    assert httpx.get(f"{live.url}/api/v1/dashboard").status_code == 401
    # a citizen (no operator role) holding a token of the same client is refused
    from admin import console_client
    from auth_service.oidc.access_token import issue_access_token
    from core.security import Actor
    from identity import service as identity
    from tests.factories import unique_id_number

    with rt.db.transaction() as db:
        citizen = identity.register_person(rt, db, Actor.cli(), name="市民看板", id_number=unique_id_number())
        client_id = console_client.registration(rt, db).client_id
    token = issue_access_token(rt, client_id=client_id, subject=citizen.id, scope="openid", acr="2")[0]
    refused = httpx.get(f"{live.url}/api/v1/dashboard", headers={"authorization": f"Bearer {token}"})
    assert refused.status_code == 403 and refused.json()["code"] == "auth.insufficient_role"
