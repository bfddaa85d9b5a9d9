"""Console languages: Simplified Chinese by default, English switchable (``?lang=`` or a cookie).

Message ids are the English text (as in gettext), so a missing Chinese entry shows English rather
than a key. Codes shown through ``t()`` (roles, request types and states, profiles, revocation
reasons …) have labels in both catalogues; ``tests/admin/test_i18n.py`` checks both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"
COOKIE = "eauth_lang"
LOCALE_DIR = Path(__file__).parent / "locale"


@cache
def catalogue(lang: str) -> dict[str, str]:
    path = LOCALE_DIR / f"{lang}.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def translator(lang: str) -> Callable[..., str]:
    table = catalogue(lang)

    def t(message: str, **values: object) -> str:
        text = table.get(message, message)
        return text.format(**values) if values else text

    return t


def pick(query: str | None, cookie: str | None, default: str = DEFAULT) -> str:
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate  # type: ignore[return-value]
    return default if default in LANGUAGES else DEFAULT


def problem_text(lang: str) -> Callable[..., str]:
    """A problem's message for people: the catalogue's text for its stable ``code`` when there is
    one (``problem:<code>``), else the problem's own (English) detail."""
    table = catalogue(lang)

    def text(problem: object) -> str:
        code, detail = getattr(problem, "code", ""), str(getattr(problem, "detail", ""))
        return table.get(f"problem:{code}", detail)

    return text
