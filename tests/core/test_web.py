"""Problem documents over real HTTP, for the framework's own errors too."""

from __future__ import annotations

PROBLEM = "application/problem+json"


def test_health_reports_database_and_hsm(http) -> None:  # type: ignore[no-untyped-def]
    r = http.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["checks"]["hsm"]["status"] == "ok" and body["checks"]["database"]["status"] == "ok"


def test_unknown_route_is_a_problem(http) -> None:  # type: ignore[no-untyped-def]
    r = http.get("/no/such/route")
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    assert r.json()["type"] == "urn:eauth:problem:not-found" and r.json()["code"] == "http.not_found"


def test_wrong_method_is_a_problem(http) -> None:  # type: ignore[no-untyped-def]
    r = http.post("/health")
    assert r.status_code == 405 and r.headers["content-type"] == PROBLEM
    assert r.json()["code"] == "http.method_not_allowed"


def test_oversized_body_is_a_problem(http, rt) -> None:  # type: ignore[no-untyped-def]
    r = http.post("/health", content=b"x" * (rt.settings.max_request_bytes + 1))
    assert r.status_code == 413 and r.json()["code"] == "request.too_large"


def test_security_headers_and_request_id(http) -> None:  # type: ignore[no-untyped-def]
    r = http.get("/health", headers={"X-Request-ID": "req-abcdef123"})
    assert r.headers["x-request-id"] == "req-abcdef123"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_openapi_is_served(http) -> None:  # type: ignore[no-untyped-def]
    r = http.get("/openapi.json")
    assert r.status_code == 200 and r.json()["info"]["title"] == "eAuth"
