"""Who is acting: actors for the audit log, principals from access tokens, and route guards.

Permissions are typed dependencies on the route (Warehouse habit):
``principal: Annotated[Principal, Depends(require(roles={Role.APPROVER}))]`` so a route without a
guard stands out and ``tests/test_route_guards.py`` can enumerate every route's guard.

Access tokens are issued by ``auth_service`` (above this layer); the composition root installs its
verifier as ``Runtime.token_verifier``. Until one is installed every guarded route answers 401.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import Kind, Problem


class Role(str, enum.Enum):
    REGISTRATION_OFFICER = "registration_officer"
    APPROVER = "approver"
    CA_ADMIN = "ca_admin"
    DEPARTMENT_ADMIN = "department_admin"
    AUDITOR = "auditor"
    PII_REVEAL = "pii_reveal"  # may reveal full ID numbers / phones (an audited action)


@dataclass(frozen=True)
class Actor:
    """Who did something, as the audit log records it."""

    kind: str  # "operator" | "client" | "person" | "cli" | "system" | "anonymous"
    id: str
    display: str = ""

    @classmethod
    def cli(cls, user: str = "local-admin") -> Actor:
        return cls("cli", user, "command line")

    @classmethod
    def system(cls, component: str = "eauth") -> Actor:
        return cls("system", component, component)

    @classmethod
    def anonymous(cls, ip: str = "") -> Actor:
        return cls("anonymous", ip or "-", "anonymous")

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class Principal:
    """A verified caller. Built only by a token verifier or the CLI, never from unverified claims."""

    actor: Actor
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    acr: str | None = None
    client_id: str | None = None
    person_id: str | None = None
    department_ids: frozenset[str] = frozenset()
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def has_role(self, role: Role | str) -> bool:
        return (role.value if isinstance(role, Role) else role) in self.roles

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


TokenVerifier = Callable[[str], Principal]


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Problem(
            Kind.UNAUTHENTICATED,
            "auth.missing_token",
            "an access token is required",
            headers={"WWW-Authenticate": 'Bearer realm="eauth"'},
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            Kind.UNAUTHENTICATED,
            "auth.bad_scheme",
            "use the Bearer scheme (RFC 6750)",
            headers={"WWW-Authenticate": 'Bearer realm="eauth", error="invalid_request"'},
        )
    return token.strip()


def check_access(
    principal: Principal,
    *,
    roles: set[Role] | frozenset[Role] = frozenset(),
    scopes: set[str] | frozenset[str] = frozenset(),
    min_acr: str | None = None,
) -> None:
    """Any one of ``roles`` or any one of ``scopes`` grants access (operators have roles, department
    systems have scopes); with neither given, any authenticated principal passes."""
    if roles or scopes:
        ok = any(principal.has_role(r) for r in roles) or any(principal.has_scope(s) for s in scopes)
        if not ok:
            wanted = sorted([r.value for r in roles] + list(scopes))
            raise Problem(Kind.FORBIDDEN, "auth.insufficient_role", f"requires one of: {', '.join(wanted)}")
    if min_acr is not None and principal.actor.kind == "operator" and (principal.acr or "0") < min_acr:
        raise Problem(Kind.FORBIDDEN, "auth.insufficient_acr", f"requires authentication level {min_acr}")
