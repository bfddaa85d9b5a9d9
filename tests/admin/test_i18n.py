"""Every message the console shows has a Simplified Chinese translation (the default language)."""

from __future__ import annotations

import re
from pathlib import Path

from admin import i18n

ADMIN = Path(__file__).resolve().parents[2] / "admin"
LITERAL = re.compile(r"""\bt\(\s*(["'])(.*?)\1""")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def template_messages() -> set[str]:
    found = set()
    for path in (ADMIN / "templates").glob("*.html"):
        found.update(m.group(2) for m in LITERAL.finditer(path.read_text(encoding="utf-8")))
    return found


def flash_messages() -> set[str]:
    found = set()
    for path in (ADMIN / "web").glob("*.py"):
        for block in re.findall(r"FLASH = \{(.*?)\n\}", path.read_text(encoding="utf-8"), re.S):
            found.update(re.findall(r':\s*"([^"]+)"', block))
    return found


def dynamic_values() -> set[str]:
    """Values the templates pass through t() at run time: types, states, roles, profiles, reasons..."""
    from admin import service
    from admin.models import STATES, TYPES
    from ca import profiles
    from ca.models import STATUSES
    from ca.revocation import REVOCATION_REASONS
    from core.errors import Kind
    from core.security import Role
    from identity.service import ORG_TYPES

    events = {"created", "submitted", "comment", "approved", "rejected", "done", "failed", "cancelled"}
    return (
        set(TYPES) | set(STATES) | {r.value for r in Role} | set(profiles.PROFILES) | set(REVOCATION_REASONS)
        | set(service.DOCUMENT_TYPES) | set(ORG_TYPES) | set(STATUSES) | events | {k.title for k in Kind}
        | {"issued", "revoked", "valid", "invalid", "all", "person", "org", "success", "failure", "ocsp_responses", "verifications"}
        | {"root", "issuing", "ok", "expiring", "expired", "awaiting_signature", "inactive", "key_missing"}  # CA overview states
        | {f"subject_kind:{p.subject_kind}" for p in profiles.PROFILES.values()}
    )


def test_every_console_message_has_a_chinese_translation() -> None:
    zh = i18n.catalogue("zh-CN")
    wanted = template_messages() | flash_messages() | dynamic_values()
    assert len(template_messages()) > 150  # the extraction itself works
    missing = sorted(m for m in wanted if m not in zh)
    assert not missing, f"untranslated console messages: {missing}"


def test_every_code_shown_has_an_english_label() -> None:
    en = i18n.catalogue("en")
    codes = {v for v in dynamic_values() if v not in {k.title for k in __import__("core.errors", fromlist=["Kind"]).Kind}}
    missing = sorted(c for c in codes if c not in en)
    assert not missing, f"codes without an English label: {missing}"
    assert i18n.translator("en")("ca_admin") == "CA administrator" and i18n.translator("en")("Dashboard") == "Dashboard"


def test_problem_texts_name_real_codes() -> None:
    """Every ``problem:<code>`` entry names a code the code base raises (no stale entries)."""
    import subprocess

    codes = [k.split(":", 1)[1] for k in i18n.catalogue("zh-CN") if k.startswith("problem:")]
    assert len(codes) > 20
    root = ADMIN.parent
    for code in codes:
        found = subprocess.run(["grep", "-rqF", f'"{code}"', str(root / "admin"), str(root / "core"), str(root / "identity"), str(root / "auth_service"), str(root / "signing")])
        assert found.returncode == 0, f"no code raises {code}"
    text = i18n.problem_text("zh-CN")
    from core.errors import Kind, Problem

    assert text(Problem(Kind.FORBIDDEN, "admin.four_eyes", "english")) == "该申请由您创建或提交，须由其他操作员审批。"
    assert text(Problem(Kind.FORBIDDEN, "some.other", "english detail")) == "english detail"
    assert i18n.problem_text("en")(Problem(Kind.FORBIDDEN, "admin.four_eyes", "english")) == "english"


def test_translations_keep_their_placeholders() -> None:
    for message, text in i18n.catalogue("zh-CN").items():
        assert set(PLACEHOLDER.findall(message)) == set(PLACEHOLDER.findall(text)), message
        assert text.strip(), message


def test_language_choice() -> None:
    assert i18n.pick(None, None) == "zh-CN"
    assert i18n.pick("en", "zh-CN") == "en"
    assert i18n.pick("fr", "en") == "en"  # unknown query value: the cookie decides
    assert i18n.pick("<script>", None) == "zh-CN"
    t = i18n.translator("zh-CN")
    assert t("Dashboard") == "仪表盘" and t("no such message") == "no such message"
    assert i18n.translator("en")("Dashboard") == "Dashboard"
    assert i18n.translator("en")("keyCompromise") == "Key compromise"
    assert t("{first}–{last} of {total}", first=1, last=2, total=3) == "第 1–2 条，共 3 条"
