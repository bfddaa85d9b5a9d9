"""CA administration in the API, as on the console's pages: the CA hierarchy with the OCSP
responders' and timestamp units' certificates and keys, the certificate profiles' rules, CRL
publication, and operators (roles and departments).

Reading: CA administrators and auditors. Publishing a CRL and appointing operators: CA
administrators with acr 2, audited (``ca.crl.publish``, ``identity.operator.set``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import Field

from admin import ca_overview, service
from admin.schemas import _In
from core.security import Principal, Role
from core.web import RuntimeDep, require

router = APIRouter(prefix="/api/v1", tags=["ca administration"])

CaReader = Annotated[Principal, Depends(require(roles={Role.CA_ADMIN, Role.AUDITOR}))]
CaAdmin = Annotated[Principal, Depends(require(roles={Role.CA_ADMIN}, min_acr="2"))]

RoleName = Literal["registration_officer", "approver", "ca_admin", "department_admin", "auditor", "pii_reveal"]


class OperatorIn(_In):
    roles: list[RoleName] = Field(default_factory=list, max_length=10)
    department: str = Field("", max_length=64, description="USCC or id (department administrators)")
    active: bool = True


@router.get("/ca/overview")
def ca_overview_(rt: RuntimeDep, principal: CaReader) -> dict[str, Any]:
    """Each CA (root/issuing, key label and whether the HSM holds it, SHA-256 fingerprint, validity,
    latest CRL) and each OCSP responder / timestamp unit certificate with its key."""
    with rt.db.read() as db:
        return {
            "authorities": [a.as_dict() for a in ca_overview.authorities(rt, db)],
            "services": [k.as_dict() for k in ca_overview.responders_and_tsa(rt, db)],
        }


@router.get("/profiles")
def list_profiles(principal: CaReader) -> list[dict[str, Any]]:
    """Every certificate profile's rules (validity, key types and usages, policy, checks, approvals)."""
    return [p.as_dict() for p in ca_overview.profiles()]


@router.post("/ca/{ca_name}/crl")
def publish_crl(ca_name: str, rt: RuntimeDep, principal: CaAdmin) -> dict[str, Any]:
    """Publish the CA's CRLs now (full CRL and shards; also done on every change and on schedule)."""
    from ca import crl

    with rt.db.transaction() as db:
        published = crl.publish_crls(rt, db, principal.actor, ca_name[:64], trigger="api")
    return {"ca": ca_name[:64], "published": [asdict(p) for p in published]}


@router.get("/operators")
def list_operators(rt: RuntimeDep, principal: CaAdmin) -> dict[str, Any]:
    from identity import service as identity

    with rt.db.read() as db:
        items = []
        for op in identity.list_operators(db):
            person = identity.get_person(db, op.person_id)
            items.append({"person_id": op.person_id, "name": person.name, "roles": sorted(op.roles), "department_id": op.department_id, "active": op.active})
    items.sort(key=lambda o: (not o["active"], o["name"]))
    return {"items": items, "total": len(items), "limit": len(items), "offset": 0}


@router.put("/operators/{person_id}")
def set_operator(person_id: str, body: OperatorIn, rt: RuntimeDep, principal: CaAdmin) -> dict[str, Any]:
    """Grant, change or withdraw a registered person's operator roles (never one's own)."""
    with rt.db.transaction() as db:
        view = service.appoint_operator(
            rt, db, principal.actor, actor_person_id=principal.actor.id if principal.actor.kind == "operator" else None,
            person_id=person_id, roles=set(body.roles), department=body.department, active=body.active,
        )
    return {"person_id": view.person_id, "roles": sorted(view.roles), "department_id": view.department_id, "active": view.active}
