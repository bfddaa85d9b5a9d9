"""A scripted browser for the console's sign-in through the platform's SSO, over real HTTP.

It reads the HTML the servers send and posts the forms a person would (cookies kept by httpx,
redirects followed by hand so each hop can be checked). Independent of the code under test.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

_FORM = re.compile(r"<form[^>]*action=\"(?P<action>[^\"]+)\"[^>]*>(?P<body>.*?)</form>", re.S)
_INPUT = re.compile(r"<input[^>]*?name=\"(?P<name>[^\"]+)\"(?:[^>]*?value=\"(?P<value>[^\"]*)\")?", re.S)


@dataclass
class Form:
    action: str
    fields: dict[str, str]


class Browser:
    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base, follow_redirects=False, timeout=60)
        self.hops: list[str] = []

    def close(self) -> None:
        self.http.close()

    def follow(self, response: httpx.Response, limit: int = 12) -> httpx.Response:
        for _ in range(limit):
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = urljoin(str(response.request.url), response.headers["location"])
            assert location.startswith(self.base), f"redirect off the platform: {location}"
            self.hops.append(urlsplit(location).path)
            response = self.http.get(location)
        raise AssertionError("too many redirects")

    def get(self, url: str) -> httpx.Response:
        return self.follow(self.http.get(url))

    @staticmethod
    def forms(response: httpx.Response) -> list[Form]:
        out = []
        for match in _FORM.finditer(response.text):
            fields = {m.group("name"): html.unescape(m.group("value") or "") for m in _INPUT.finditer(match.group("body"))}
            out.append(Form(html.unescape(match.group("action")), fields))
        return out

    def submit(self, response: httpx.Response, action: str, values: dict[str, str], *, method: str | None = None) -> httpx.Response:
        """Post the form to ``action`` (the one whose hidden ``method`` is ``method``, if given)."""
        for form in self.forms(response):
            if form.action == action and (method is None or form.fields.get("method") == method):
                return self.follow(self.http.post(urljoin(str(response.request.url), form.action), data={**form.fields, **values}))
        raise AssertionError(f"no form for {action} {method or ''} on {response.request.url}: {response.text[:800]}")

    def sign_in(self, login: str, password: str, *, code: str | None = None, method: str = "totp", start: str = "/admin") -> httpx.Response:
        """Open a console page, sign in at the SSO, pass the second step; returns the last page."""
        page = self.get(start)
        assert "/sso/login" in str(page.request.url), page.text[:400]
        page = self.submit(page, "/sso/login", {"login": login, "password": password})
        if code is None:
            return page
        assert "/sso/login/otp" in str(page.request.url), page.text[:400]
        return self.submit(page, "/sso/login/otp", {"code": code}, method=method)
