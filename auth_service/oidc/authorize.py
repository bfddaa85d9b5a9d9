"""The authorization endpoint: RFC 6749 §4.1.1–4.1.2, OIDC Core §3.1.2, RFC 7636, RFC 9207.

Validation order matters (RFC 6749 §4.1.2.1): until the client and its exact redirect URI are
established, errors are shown on our own page — never redirected, or the endpoint becomes an open
redirector. After that, errors go back to the client with ``state`` and ``iss``.

Only ``response_type=code`` and ``response_mode=query`` are offered. PKCE is ``S256`` only and
mandatory for public clients. ``prompt`` (none/login/consent/select_account), ``max_age`` and
``acr_values`` decide whether the user must (re-)authenticate, step up to level 2 or consent.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import bindparam, delete, insert, text
from sqlalchemy.orm import Session

from auth_service import sessions as sessions_mod
from auth_service import timestamps
from auth_service.models import AuthorizationCode, Consent, Interaction
from auth_service.oidc import pkce
from auth_service.service import OIDC_SCOPES, ClientView
from core.runtime import Runtime

CODE_SECONDS = 60
INTERACTION_MINUTES = 30
MAX_PARAM = 2048
MAX_PARAMS = 40
KNOWN_ACR = ("1", "2")
PROMPTS = ("none", "login", "consent", "select_account")


class AuthorizeError(Exception):
    """``redirect_uri`` None: show on our page (the client or redirect URI is not trustworthy)."""

    def __init__(self, error: str, description: str, *, redirect_uri: str | None = None, state: str | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state


@dataclass(frozen=True)
class AuthRequest:
    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    prompt: tuple[str, ...] = ()
    max_age: int | None = None
    acr_values: tuple[str, ...] = ()
    ui_locales: str | None = None
    login_hint: str | None = None
    id_token_hint_sub: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AuthRequest:
        data = json.loads(text)
        for name in ("scope", "prompt", "acr_values"):
            data[name] = tuple(data.get(name) or ())
        return cls(**data)

    @property
    def required_acr(self) -> str | None:
        """The lowest level among the requested ``acr_values`` we know (None: no requirement)."""
        known = [v for v in self.acr_values if v in KNOWN_ACR]
        return min(known) if known else None


def redirect_with(uri: str, params: dict[str, str | None]) -> str:
    """``uri`` with ``params`` added to its query (RFC 6749 §4.1.2: keep the existing query)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def error_redirect(rt: Runtime, exc: AuthorizeError) -> str:
    assert exc.redirect_uri is not None
    return redirect_with(exc.redirect_uri, {"error": exc.error, "error_description": exc.description, "state": exc.state, "iss": rt.settings.public_url})


def validate_request(rt: Runtime, pairs: list[tuple[str, str]]) -> tuple[ClientView, AuthRequest]:
    """Parse and check an authorization request (query or form pairs)."""
    from auth_service.oidc.client_auth import ClientCache

    if len(pairs) > MAX_PARAMS:
        raise AuthorizeError("invalid_request", "too many parameters")
    params: dict[str, str] = {}
    duplicated = set()
    for key, value in pairs:
        if key in params:
            duplicated.add(key)
        params[key] = value
    if {"client_id", "redirect_uri"} & duplicated:
        raise AuthorizeError("invalid_request", "client_id and redirect_uri must appear once")
    client_id = params.get("client_id", "")
    if not client_id:
        raise AuthorizeError("invalid_request", "client_id is required")
    client = ClientCache.of(rt).get(client_id) if len(client_id) <= 64 else None
    if client is None or not client.active:
        raise AuthorizeError("invalid_client", "unknown or disabled client")
    redirect_uri = params.get("redirect_uri", "")
    # OIDC Core §3.1.2.1: redirect_uri is required and must match a registered one exactly
    # (simple string comparison, RFC 6749 §3.1.2.3 / Security BCP §4.1.3).
    if not redirect_uri or redirect_uri not in client.redirect_uris:
        raise AuthorizeError("invalid_request", "redirect_uri is missing or not registered for this client")

    state = params.get("state")

    def fail(error: str, description: str) -> AuthorizeError:
        return AuthorizeError(error, description, redirect_uri=redirect_uri, state=state if state and len(state) <= MAX_PARAM else None)

    if duplicated:
        raise fail("invalid_request", f"parameter(s) repeated: {', '.join(sorted(duplicated))}")
    oversized = [k for k, v in params.items() if len(v) > MAX_PARAM or len(k) > 100]
    if oversized:
        raise fail("invalid_request", "parameter too long")
    if "request" in params:
        raise fail("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise fail("request_uri_not_supported", "request_uri is not supported")
    if params.get("response_type") != "code":
        raise fail("unsupported_response_type", "only response_type=code is supported")
    if params.get("response_mode", "query") != "query":
        raise fail("invalid_request", "only response_mode=query is supported")
    if "authorization_code" not in client.grant_types:
        raise fail("unauthorized_client", "this client may not use the authorization code grant")
    scope = tuple(dict.fromkeys(params.get("scope", "").split()))
    if not scope:
        raise fail("invalid_scope", "scope is required")
    not_allowed = [s for s in scope if s not in client.scopes]
    if not_allowed:
        raise fail("invalid_scope", f"scope not allowed for this client: {' '.join(not_allowed[:5])}")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is not None or method is not None:
        if method != "S256":
            raise fail("invalid_request", "code_challenge_method must be S256")
        if not pkce.valid_challenge(challenge or ""):
            raise fail("invalid_request", "code_challenge must be BASE64URL(SHA-256(code_verifier))")
    elif client.public:
        raise fail("invalid_request", "PKCE (code_challenge with S256) is required for public clients")
    prompt = tuple(params.get("prompt", "").split())
    if any(p not in PROMPTS for p in prompt):
        raise fail("invalid_request", "unknown prompt value")
    if "none" in prompt and len(prompt) > 1:
        raise fail("invalid_request", "prompt=none cannot be combined with other values")
    max_age = None
    if "max_age" in params:
        raw = params["max_age"]
        if not raw.isdigit() or len(raw) > 9:
            raise fail("invalid_request", "max_age must be a non-negative integer")
        max_age = int(raw)
    nonce = params.get("nonce")
    if nonce is not None and not (1 <= len(nonce) <= 255):
        raise fail("invalid_request", "nonce must be 1–255 characters")
    acr_values = tuple(params.get("acr_values", "").split())
    hint_sub = None
    if params.get("id_token_hint"):
        from auth_service.oidc.logout import id_token_hint_claims

        claims = id_token_hint_claims(rt, params["id_token_hint"])
        if claims is None:
            raise fail("invalid_request", "id_token_hint is not an ID token issued here")
        hint_sub = claims["sub"]
    return client, AuthRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        nonce=nonce,
        code_challenge=challenge,
        prompt=prompt,
        max_age=max_age,
        acr_values=acr_values,
        ui_locales=params.get("ui_locales"),
        login_hint=(params.get("login_hint") or "")[:254] or None,
        id_token_hint_sub=hint_sub,
    )


# -- what the user still has to do -------------------------------------------------------------------

LOGIN, STEP_UP, CONSENT, ISSUE = "login", "step_up", "consent", "issue"


def next_step(
    db: Session,
    client: ClientView,
    req: AuthRequest,
    session: sessions_mod.SessionView | None,
    *,
    authenticated_here: bool = False,
    consented_here: bool = False,
) -> str:
    """LOGIN, STEP_UP, CONSENT or ISSUE. ``authenticated_here``: the user (re-)authenticated within
    this interaction, which satisfies prompt=login and max_age."""
    if session is None:
        return LOGIN
    if req.id_token_hint_sub and req.id_token_hint_sub != session.person_id and not authenticated_here:
        return LOGIN
    if not authenticated_here:
        if "login" in req.prompt or "select_account" in req.prompt:
            return LOGIN
        # OIDC Core §3.1.2.1: re-authenticate when more than max_age seconds passed; max_age=0 is
        # prompt=login (auth_time has one-second resolution, so "more than 0" must not mean "≥ 1 s").
        if req.max_age is not None and (req.max_age == 0 or timestamps.epoch() - session.auth_time > req.max_age):
            return LOGIN
    required = req.required_acr
    if required and sessions_mod.ACR_ORDER.get(session.acr, 0) < sessions_mod.ACR_ORDER[required]:
        return STEP_UP
    if not client.first_party and not consented_here:
        if "consent" in req.prompt:
            return CONSENT
        consent = db.get(Consent, (session.person_id, client.client_id))
        granted = set(consent.scopes.split()) if consent else set()
        if not set(req.scope) <= granted | {"openid"} or consent is None:
            return CONSENT
    return ISSUE


def prompt_none_error(step: str) -> str:
    return {LOGIN: "login_required", STEP_UP: "interaction_required", CONSENT: "consent_required"}[step]


def record_consent(rt: Runtime, db: Session, *, person_id: str, client_id: str, scopes: tuple[str, ...]) -> None:
    row = db.get(Consent, (person_id, client_id))
    now = timestamps.stamp()
    if row is None:
        db.add(Consent(person_id=person_id, client_id=client_id, scopes=" ".join(scopes), granted_at=now))
    else:
        row.scopes = " ".join(dict.fromkeys([*row.scopes.split(), *scopes]))
        row.granted_at = now
    from core.security import Actor

    rt.audit.record(db, actor=Actor("person", person_id), action="sso.consent.grant", target=f"client:{client_id}", details={"scopes": list(scopes)})


_NEW_CODE = insert(AuthorizationCode.__table__)
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


def issue_code(rt: Runtime, db: Session, client: ClientView, req: AuthRequest, session: sessions_mod.SessionView, *, asynchronous: bool = True) -> str:
    """Store a single-use code (hashed) and return the redirect to the client (RFC 9207 ``iss``).

    On PostgreSQL the transaction that stores the code commits asynchronously
    (``synchronous_commit = off``, this transaction only): a code lives 60 s, and losing the last
    few milliseconds of codes in a server crash costs the user one more redirect, while a flush to
    disk per sign-in costs every user the wait. Redemption, which makes the code single-use, stays
    a synchronous commit. ``asynchronous=False``: the transaction also holds work that must be
    durable when the user sees the answer (a login's session and audit entry)."""
    conn = db.connection()
    if asynchronous and rt.db.dialect == "postgresql":
        conn.execute(_ASYNC_COMMIT)
    code = secrets.token_urlsafe(32)
    now_dt = timestamps.now()
    # A Core INSERT built once, not an ORM object flushed at commit: every sign-in runs this.
    conn.execute(
        _NEW_CODE,
        {
            "code_hash": hashlib.sha256(code.encode()).hexdigest(),
            "grant_id": secrets.token_hex(16),
            "client_id": client.client_id,
            "session_id": session.id,
            "person_id": session.person_id,
            "redirect_uri": req.redirect_uri,
            "scope": " ".join(req.scope),
            "nonce": req.nonce,
            "code_challenge": req.code_challenge,
            "acr": session.acr,
            "amr": " ".join(session.amr),
            "auth_time": session.auth_time,
            "created_at": timestamps.stamp(now_dt),
            "expires_at": timestamps.stamp(now_dt, seconds=CODE_SECONDS),
        },
    )
    sessions_mod.record_client(db, session.id, client.client_id)
    return redirect_with(req.redirect_uri, {"code": code, "state": req.state, "iss": rt.settings.public_url})


def oauth_scopes(scope: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(s for s in scope if s not in OIDC_SCOPES)


# -- interactions (a pending request while the user logs in) ------------------------------------------


_NEW_INTERACTION = insert(Interaction.__table__)
_DROP_INTERACTION = delete(Interaction.__table__).where(Interaction.__table__.c.id_hash == bindparam("h"))


def create_interaction(db: Session, *, browser_hash: str, req: AuthRequest) -> str:
    token = secrets.token_urlsafe(24)
    now_dt = timestamps.now()
    # A prebuilt Core INSERT: every sign-in that starts without a session runs this.
    db.connection().execute(
        _NEW_INTERACTION,
        {
            "id_hash": hashlib.sha256(token.encode()).hexdigest(),
            "browser_hash": browser_hash,
            "client_id": req.client_id,
            "params": json.dumps({"req": json.loads(req.to_json())}),
            "person_id": None,
            "amr": "",
            "created_at": timestamps.stamp(now_dt),
            "expires_at": timestamps.stamp(now_dt, minutes=INTERACTION_MINUTES),
        },
    )
    return token


@dataclass
class InteractionState:
    token: str
    req: AuthRequest | None  # None: a login for the account page, not for a client
    person_id: str | None
    amr: list[str]
    authenticated: bool
    consented: bool
    next_path: str | None


def load_interaction(db: Session, token: str | None, browser_hash: str) -> InteractionState | None:
    if not token or len(token) > 64:
        return None
    row = db.get(Interaction, hashlib.sha256(token.encode()).hexdigest())
    if row is None or row.expires_at <= timestamps.stamp() or not secrets.compare_digest(row.browser_hash, browser_hash):
        return None
    data = json.loads(row.params)
    req = AuthRequest.from_json(json.dumps(data["req"])) if data.get("req") else None
    return InteractionState(token, req, row.person_id, row.amr.split(), bool(data.get("authenticated")), bool(data.get("consented")), data.get("next"))


def save_interaction(db: Session, state: InteractionState) -> None:
    row = db.get(Interaction, hashlib.sha256(state.token.encode()).hexdigest())
    if row is None:
        return
    row.person_id = state.person_id
    row.amr = " ".join(state.amr)
    row.params = json.dumps(
        {"req": json.loads(state.req.to_json()) if state.req else None, "authenticated": state.authenticated, "consented": state.consented, "next": state.next_path}
    )


def create_account_interaction(db: Session, *, browser_hash: str, next_path: str) -> str:
    token = secrets.token_urlsafe(24)
    now_dt = timestamps.now()
    db.add(
        Interaction(
            id_hash=hashlib.sha256(token.encode()).hexdigest(),
            browser_hash=browser_hash,
            client_id="",
            params=json.dumps({"req": None, "next": next_path}),
            amr="",
            created_at=timestamps.stamp(now_dt),
            expires_at=timestamps.stamp(now_dt, minutes=INTERACTION_MINUTES),
        )
    )
    return token


def drop_interaction(db: Session, token: str) -> None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    loaded = db.identity_map.get(Session.identity_key(Interaction, digest))
    if loaded is not None:  # loaded (and maybe changed) in this session: let the ORM delete it
        db.delete(loaded)
        return
    db.connection().execute(_DROP_INTERACTION, {"h": digest})  # every completed sign-in: one DELETE, no SELECT first
