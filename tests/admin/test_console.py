"""Console pages over real HTTP: roles, languages, the main flows of the registration desk."""

from __future__ import annotations

import pytest

from core.security import Role


def test_dashboard_renders_in_chinese_by_default_and_switches_to_english(operator) -> None:  # type: ignore[no-untyped-def]
    op = operator(Role.REGISTRATION_OFFICER)
    r = op.http.get("/admin")
    assert r.status_code == 200, r.text
    assert '<html lang="zh-CN">' in r.text and "仪表盘" in r.text
    assert "<svg" in r.text and "<script>" not in r.text
    r = op.http.get("/admin?lang=en")
    assert '<html lang="en">' in r.text and "Dashboard" in r.text
    assert "eauth_lang=en" in r.headers["set-cookie"]
    op.http.cookies.set("eauth_lang", "en")
    assert '<html lang="en">' in op.http.get("/admin").text
    assert r.headers["cache-control"] == "no-store"
