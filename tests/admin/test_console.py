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


def test_daily_chart_geometry() -> None:
    from admin.web.dashboard import daily_chart

    days = ["2026-11-29", "2026-11-30", "2026-12-01"]
    chart = daily_chart(days, {"issued": {"2026-11-30": 7}, "revoked": {"2026-12-01": 2}}, width=300, height=100)
    assert chart.maximum == 8 and [v for _, v in chart.grid] == [0, 2, 4, 6, 8]  # a round upper bound
    tall = next(b for b in chart.bars if b.value == 7)
    short = next(b for b in chart.bars if b.value == 2)
    assert tall.series == "issued" and short.series == "revoked" and tall.day == "2026-11-30"
    assert tall.height == pytest.approx(7 / 2 * short.height) and tall.y + tall.height == pytest.approx(chart.plot_bottom)
    assert all(b.x >= chart.plot_left and b.x + b.width <= 300 for b in chart.bars)
    empty = daily_chart(days, {"issued": {}, "revoked": {}})
    assert all(b.height == 0 for b in empty.bars) and empty.maximum == 4


def test_certificate_decoding_names_the_attributes() -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from admin.web.certificates import decode

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"), x509.NameAttribute(NameOID.COMMON_NAME, "张三"), x509.NameAttribute(NameOID.SERIAL_NUMBER, "abc")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(0x1234)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    d = decode(cert)
    assert d["subject"] == "serialNumber=abc,CN=张三,C=CN" and d["serial"] == "1234" and d["key"].startswith("EC secp256r1")
    assert d["extensions"] == [{"name": "keyUsage", "critical": True, "value": "digital_signature, content_commitment"}]
