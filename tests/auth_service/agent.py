"""A scripted browser for the sign-in pages over real HTTP (cookies, forms, redirects by hand).

Independent of the provider's code: it reads the HTML the server sends and posts the forms a
person would. Playwright tests drive the same pages in Chromium.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

_INPUT = re.compile(r'<input[^>]*name="(?P<name>[^"]+)"[^>]*value="(?P<value>[^"]*)"', re.S)
_FORM = re.compile(r'<form[^>]*action="(?P<action>[^"]+)"[^>]*>(?P<body>.*?)</form>', re.S)


@dataclass
class Form:
    action: str
    fields: dict[str, str]


class Agent:
    def __init__(self, base_url: str, **kwargs: object) -> None:
        self.base = base_url
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30, **kwargs)  # type: ignore[arg-type]
        self.last: httpx.Response | None = None

    def close(self) -> None:
        self.http.close()

    def get(self, url: str) -> httpx.Response:
        self.last = self.http.get(url)
        return self.last

    def follow(self, response: httpx.Response, *, stop_at: str | None = None, limit: int = 10) -> httpx.Response:
        """Follow redirects on our host; stop (returning the redirect) when one leaves it or
        matches ``stop_at``."""
        for _ in range(limit):
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = urljoin(str(response.request.url), response.headers["location"])
            if (stop_at and location.startswith(stop_at)) or not location.startswith(self.base):
                return response
            response = self.http.get(location)
            self.last = response
        raise AssertionError("too many redirects")

    def forms(self, response: httpx.Response | None = None) -> list[Form]:
        text = (response or self.last).text  # type: ignore[union-attr]
        out = []
        for match in _FORM.finditer(text):
            fields = {m.group("name"): html.unescape(m.group("value")) for m in _INPUT.finditer(match.group("body"))}
            out.append(Form(html.unescape(match.group("action")), fields))
        return out

    def form(self, action: str, response: httpx.Response | None = None) -> Form:
        for form in self.forms(response):
            if form.action == action:
                return form
        raise AssertionError(f"no form posting to {action}: {(response or self.last).text[:500]}")  # type: ignore[union-attr]

    def submit(self, action: str, extra: dict[str, str] | None = None, response: httpx.Response | None = None) -> httpx.Response:
        form = self.form(action, response)
        self.last = self.http.post(form.action, data={**form.fields, **(extra or {})})
        return self.last

    def login(self, start: httpx.Response, login: str, password: str) -> httpx.Response:
        """From an /authorize response: follow to the login page, sign in, follow our redirects."""
        page = self.follow(start)
        assert "/sso/login" in str(page.request.url), page.text[:300]
        return self.follow(self.submit("/sso/login", {"login": login, "password": password}))
