"""Use cases of the identity registry. Other packages call these, never the tables.

Each function takes the runtime, a DB session (the caller's transaction) and, for changes, the
acting identity; results are frozen dataclasses with personal data masked. Full values come only
from :func:`reveal_person` (audited) or :func:`person_secrets` (internal use by the CA when it
builds a certificate, audited as part of that issuance).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core import clock
from core.errors import Kind, Problem, invalid
from core.pii import mask_email, mask_id_number, mask_phone
from core.runtime import Runtime
from core.security import Actor, Role
from identity.models import Membership, Operator, Organisation, Person
from identity.numbers import (
    id_number_error,
    normalise_id_number,
    normalise_phone,
    normalise_uscc,
    phone_error,
    uscc_error,
)

ORG_TYPES = ("enterprise", "government", "institution")

CTX_ID = "person.id_number"
CTX_PHONE = "person.phone"
CTX_EMAIL = "person.email"


@dataclass(frozen=True)
class PersonView:
    id: str
    name: str
    id_number_masked: str
    phone_masked: str | None
    email_masked: str | None
    created_at: str
    created: bool = False  # True when this call registered the person


@dataclass(frozen=True)
class PersonSecrets:
    id: str
    name: str
    id_number: str
    phone: str | None
    email: str | None


@dataclass(frozen=True)
class OrgView:
    id: str
    name: str
    name_en: str | None
    uscc: str
    type: str
    parent_id: str | None
    dns_suffixes: tuple[str, ...]
    created_at: str
    created: bool = False


@dataclass(frozen=True)
class MembershipView:
    id: str
    person_id: str
    org_id: str
    title: str | None
    active: bool


@dataclass(frozen=True)
class OperatorView:
    id: str
    person_id: str
    roles: frozenset[str]
    department_id: str | None
    active: bool


def _now() -> str:
    return clock.now().astimezone(UTC).isoformat(timespec="seconds")


def _new_id() -> str:
    return uuid.uuid4().hex


def _person_view(p: Person, *, created: bool = False) -> PersonView:
    return PersonView(p.id, p.name, p.id_number_masked, p.phone_masked, p.email_masked, p.created_at, created)


def _org_view(o: Organisation, *, created: bool = False) -> OrgView:
    suffixes = tuple(s for s in (o.dns_suffixes or "").split("\n") if s)
    return OrgView(o.id, o.name, o.name_en, o.uscc, o.type, o.parent_id, suffixes, o.created_at, created)


def _check_name(name: str, field: str = "name") -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise invalid("identity.invalid_name", "a name of 1–200 characters is required", **{field: "must be 1–200 characters"})
    return name


def _normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 254 or " " in email:
        raise invalid("identity.invalid_email", "the e-mail address is not valid", email="not a valid address")
    return email


# -- persons -------------------------------------------------------------------------------------


def register_person(
    rt: Runtime,
    db: Session,
    actor: Actor,
    *,
    name: str,
    id_number: str,
    phone: str | None = None,
    email: str | None = None,
) -> PersonView:
    """Register a person, or find the existing record for that ID number (one record per person)."""
    id_number = normalise_id_number(id_number)
    reason = id_number_error(id_number)
    if reason:
        raise invalid("identity.invalid_id_number", f"the resident ID number {reason}", id_number=reason)
    name = _check_name(name)
    if phone:
        phone = normalise_phone(phone)
        reason = phone_error(phone)
        if reason:
            raise invalid("identity.invalid_phone", f"the phone number {reason}", phone=reason)
    if email:
        email = _normalise_email(email)
    v = rt.vault
    idx = v.blind_index(id_number, context=CTX_ID)
    existing = db.execute(select(Person).where(Person.id_number_idx == idx)).scalar_one_or_none()
    if existing is not None:
        return _person_view(existing)
    phone_idx = v.blind_index(phone, context=CTX_PHONE) if phone else None
    email_idx = v.blind_index(email, context=CTX_EMAIL) if email else None
    if phone_idx and db.execute(select(Person.id).where(Person.phone_idx == phone_idx)).first():
        raise Problem(Kind.CONFLICT, "identity.phone_taken", "this phone number is registered to another person")
    if email_idx and db.execute(select(Person.id).where(Person.email_idx == email_idx)).first():
        raise Problem(Kind.CONFLICT, "identity.email_taken", "this e-mail address is registered to another person")
    now = _now()
    person = Person(
        id=_new_id(),
        name=name,
        id_number_ct=v.encrypt(id_number, context=CTX_ID),
        id_number_idx=idx,
        id_number_masked=mask_id_number(id_number),
        phone_ct=v.encrypt(phone, context=CTX_PHONE) if phone else None,
        phone_idx=phone_idx,
        phone_masked=mask_phone(phone) if phone else None,
        email_ct=v.encrypt(email, context=CTX_EMAIL) if email else None,
        email_idx=email_idx,
        email_masked=mask_email(email) if email else None,
        created_at=now,
        updated_at=now,
    )
    db.add(person)
    db.flush()
    rt.audit.record(
        db,
        actor=actor,
        action="identity.person.register",
        target=f"person:{person.id}",
        details={"name": name, "id_number": person.id_number_masked},
    )
    return _person_view(person, created=True)


def update_person(
    rt: Runtime,
    db: Session,
    actor: Actor,
    person_id: str,
    *,
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
) -> PersonView:
    person = _get_person(db, person_id)
    changed: dict[str, str] = {}
    v = rt.vault
    if name is not None and name.strip() != person.name:
        person.name = _check_name(name)
        changed["name"] = person.name
    if phone is not None:
        phone = normalise_phone(phone)
        reason = phone_error(phone)
        if reason:
            raise invalid("identity.invalid_phone", f"the phone number {reason}", phone=reason)
        idx = v.blind_index(phone, context=CTX_PHONE)
        other = db.execute(select(Person.id).where(Person.phone_idx == idx, Person.id != person.id)).first()
        if other:
            raise Problem(Kind.CONFLICT, "identity.phone_taken", "this phone number is registered to another person")
        person.phone_ct, person.phone_idx, person.phone_masked = v.encrypt(phone, context=CTX_PHONE), idx, mask_phone(phone)
        changed["phone"] = person.phone_masked
    if email is not None:
        email = _normalise_email(email)
        idx = v.blind_index(email, context=CTX_EMAIL)
        other = db.execute(select(Person.id).where(Person.email_idx == idx, Person.id != person.id)).first()
        if other:
            raise Problem(Kind.CONFLICT, "identity.email_taken", "this e-mail address is registered to another person")
        person.email_ct, person.email_idx, person.email_masked = v.encrypt(email, context=CTX_EMAIL), idx, mask_email(email)
        changed["email"] = person.email_masked
    if changed:
        person.updated_at = _now()
        rt.audit.record(db, actor=actor, action="identity.person.update", target=f"person:{person.id}", details=changed)
    return _person_view(person)


def _get_person(db: Session, person_id: str) -> Person:
    person = db.get(Person, person_id)
    if person is None:
        raise Problem(Kind.NOT_FOUND, "identity.person_not_found", f"no person {person_id}")
    return person


def prefetch_persons(db: Session, person_ids: list[str]) -> list[object]:
    """Load these persons into ``db`` with one query, so that look-ups by id in this session
    (:func:`get_person`, :func:`person_secrets`) find them without one query each — for callers
    that handle many subjects at once (bulk certificate enrolment). The session keeps only weak
    references: hold the returned list for as long as the look-ups go on."""
    wanted = sorted(set(person_ids))
    held: list[object] = []
    for start in range(0, len(wanted), 500):
        held.extend(db.execute(select(Person).where(Person.id.in_(wanted[start : start + 500]))).scalars())
    return held


def get_person(db: Session, person_id: str) -> PersonView:
    return _person_view(_get_person(db, person_id))


def find_person_by_id_number(rt: Runtime, db: Session, id_number: str) -> PersonView | None:
    idx = rt.vault.blind_index(normalise_id_number(id_number), context=CTX_ID)
    p = db.execute(select(Person).where(Person.id_number_idx == idx)).scalar_one_or_none()
    return _person_view(p) if p else None


def find_person_by_login(rt: Runtime, db: Session, login: str) -> PersonView | None:
    """A login name is a resident ID number, a registered phone number or an e-mail address."""
    login = login.strip()
    v = rt.vault
    candidates = [Person.id_number_idx == v.blind_index(normalise_id_number(login), context=CTX_ID)]
    if "@" in login:
        candidates.append(Person.email_idx == v.blind_index(login.lower(), context=CTX_EMAIL))
    else:
        candidates.append(Person.phone_idx == v.blind_index(normalise_phone(login), context=CTX_PHONE))
    p = db.execute(select(Person).where(or_(*candidates))).scalars().first()
    return _person_view(p) if p else None


def search_persons(rt: Runtime, db: Session, *, query: str = "", limit: int = 50, offset: int = 0) -> list[PersonView]:
    """By name (substring), or by exact ID number / phone / e-mail via the blind indexes."""
    q = select(Person).order_by(Person.created_at.desc(), Person.id).limit(min(limit, 500)).offset(offset)
    query = query.strip()
    if query:
        v = rt.vault
        q = q.where(
            or_(
                Person.name.contains(query),
                Person.id_number_masked == query.upper(),  # a masked number as printed on a listing
                Person.id_number_idx == v.blind_index(normalise_id_number(query), context=CTX_ID),
                Person.phone_idx == v.blind_index(normalise_phone(query), context=CTX_PHONE),
                Person.email_idx == v.blind_index(query.lower(), context=CTX_EMAIL),
            )
        )
    return [_person_view(p) for p in db.execute(q).scalars()]


def count_persons(db: Session) -> int:
    return db.execute(select(func.count()).select_from(Person)).scalar_one()


def count_orgs(db: Session, *, type: str | None = None) -> int:
    q = select(func.count()).select_from(Organisation)
    if type:
        q = q.where(Organisation.type == type)
    return db.execute(q).scalar_one()


def person_secrets(rt: Runtime, db: Session, person_id: str) -> PersonSecrets:
    """Decrypted personal data, for internal use by other services (not for listings)."""
    p = _get_person(db, person_id)
    v = rt.vault
    return PersonSecrets(
        p.id,
        p.name,
        v.decrypt(p.id_number_ct, context=CTX_ID),
        v.decrypt(p.phone_ct, context=CTX_PHONE) if p.phone_ct else None,
        v.decrypt(p.email_ct, context=CTX_EMAIL) if p.email_ct else None,
    )


def reveal_person(rt: Runtime, db: Session, actor: Actor, roles: frozenset[str], person_id: str, *, reason: str) -> PersonSecrets:
    """Show the full ID number and phone to an operator holding ``pii_reveal``; always audited."""
    if Role.PII_REVEAL.value not in roles:
        raise Problem(Kind.FORBIDDEN, "identity.reveal_forbidden", "revealing personal data needs the pii_reveal permission")
    if not reason.strip():
        raise invalid("identity.reveal_reason_required", "a reason is required to reveal personal data", reason="required")
    secrets_ = person_secrets(rt, db, person_id)
    rt.audit.record(db, actor=actor, action="identity.person.reveal", target=f"person:{person_id}", details={"reason": reason})
    return secrets_


# -- organisations -------------------------------------------------------------------------------


def register_org(
    rt: Runtime,
    db: Session,
    actor: Actor,
    *,
    name: str,
    uscc: str,
    type: str = "enterprise",
    parent_id: str | None = None,
    name_en: str | None = None,
    dns_suffixes: tuple[str, ...] | list[str] = (),
) -> OrgView:
    """Register an organisation, or find the existing record for that USCC."""
    uscc = normalise_uscc(uscc)
    reason = uscc_error(uscc)
    if reason:
        raise invalid("identity.invalid_uscc", f"the unified social credit code {reason}", uscc=reason)
    if type not in ORG_TYPES:
        raise invalid("identity.invalid_org_type", f"type must be one of {', '.join(ORG_TYPES)}", type="unknown type")
    name = _check_name(name)
    existing = db.execute(select(Organisation).where(Organisation.uscc == uscc)).scalar_one_or_none()
    if existing is not None:
        return _org_view(existing)
    if parent_id is not None and db.get(Organisation, parent_id) is None:
        raise Problem(Kind.NOT_FOUND, "identity.org_not_found", f"no parent organisation {parent_id}")
    cleaned = []
    for suffix in dns_suffixes:
        s = suffix.strip().lower().lstrip(".")
        if not s or " " in s or "." not in s:
            raise invalid("identity.invalid_dns_suffix", f"invalid DNS suffix {suffix!r}", dns_suffixes="invalid suffix")
        cleaned.append(s)
    now = _now()
    org = Organisation(
        id=_new_id(), name=name, name_en=name_en, uscc=uscc, type=type, parent_id=parent_id, dns_suffixes="\n".join(cleaned), created_at=now, updated_at=now
    )
    db.add(org)
    db.flush()
    rt.audit.record(db, actor=actor, action="identity.org.register", target=f"org:{org.id}", details={"name": name, "uscc": uscc, "type": type})
    return _org_view(org, created=True)


def get_org(db: Session, org_id: str) -> OrgView:
    org = db.get(Organisation, org_id)
    if org is None:
        raise Problem(Kind.NOT_FOUND, "identity.org_not_found", f"no organisation {org_id}")
    return _org_view(org)


def find_org_by_uscc(db: Session, uscc: str) -> OrgView | None:
    org = db.execute(select(Organisation).where(Organisation.uscc == normalise_uscc(uscc))).scalar_one_or_none()
    return _org_view(org) if org else None


def resolve_org(db: Session, ref: str) -> OrgView:
    """An organisation by id, USCC or exact name (CLI convenience)."""
    org = db.get(Organisation, ref) or db.execute(select(Organisation).where(or_(Organisation.uscc == ref.upper(), Organisation.name == ref))).scalars().first()
    if org is None:
        raise Problem(Kind.NOT_FOUND, "identity.org_not_found", f"no organisation {ref!r}")
    return _org_view(org)


def search_orgs(db: Session, *, query: str = "", type: str | None = None, limit: int = 50, offset: int = 0) -> list[OrgView]:
    q = select(Organisation).order_by(Organisation.created_at.desc(), Organisation.id).limit(min(limit, 500)).offset(offset)
    if query.strip():
        q = q.where(or_(Organisation.name.contains(query.strip()), Organisation.uscc == query.strip().upper()))
    if type:
        q = q.where(Organisation.type == type)
    return [_org_view(o) for o in db.execute(q).scalars()]


def set_dns_suffixes(rt: Runtime, db: Session, actor: Actor, org_id: str, suffixes: list[str]) -> OrgView:
    org = db.get(Organisation, org_id)
    if org is None:
        raise Problem(Kind.NOT_FOUND, "identity.org_not_found", f"no organisation {org_id}")
    org.dns_suffixes = "\n".join(s.strip().lower().lstrip(".") for s in suffixes if s.strip())
    org.updated_at = _now()
    rt.audit.record(db, actor=actor, action="identity.org.dns_suffixes", target=f"org:{org.id}", details={"suffixes": suffixes})
    return _org_view(org)


# -- memberships and operators ---------------------------------------------------------------------


def add_membership(rt: Runtime, db: Session, actor: Actor, *, person_id: str, org_id: str, title: str | None = None) -> MembershipView:
    _get_person(db, person_id)
    get_org(db, org_id)
    m = db.execute(select(Membership).where(Membership.person_id == person_id, Membership.org_id == org_id)).scalar_one_or_none()
    if m is None:
        m = Membership(id=_new_id(), person_id=person_id, org_id=org_id, title=title, active=True, created_at=_now())
        db.add(m)
        db.flush()
        rt.audit.record(db, actor=actor, action="identity.membership.add", target=f"person:{person_id}", details={"org": org_id, "title": title})
    elif not m.active or (title and m.title != title):
        m.active, m.title = True, title or m.title
    return MembershipView(m.id, m.person_id, m.org_id, m.title, m.active)


def members_of(db: Session, org_id: str, *, limit: int = 500) -> list[MembershipView]:
    """A department's active members (its staff), newest first."""
    rows = db.execute(select(Membership).where(Membership.org_id == org_id, Membership.active).order_by(Membership.created_at.desc()).limit(limit)).scalars()
    return [MembershipView(m.id, m.person_id, m.org_id, m.title, m.active) for m in rows]


def memberships_of(db: Session, person_id: str) -> list[MembershipView]:
    rows = db.execute(select(Membership).where(Membership.person_id == person_id, Membership.active)).scalars()
    return [MembershipView(m.id, m.person_id, m.org_id, m.title, m.active) for m in rows]


def set_operator(
    rt: Runtime, db: Session, actor: Actor, *, person_id: str, roles: set[str] | frozenset[str], department_id: str | None = None, active: bool = True
) -> OperatorView:
    _get_person(db, person_id)
    known = {r.value for r in Role}
    unknown = set(roles) - known
    if unknown:
        raise invalid("identity.unknown_role", f"unknown role(s): {', '.join(sorted(unknown))}", roles="unknown role")
    op = db.execute(select(Operator).where(Operator.person_id == person_id)).scalar_one_or_none()
    if op is None:
        op = Operator(id=_new_id(), person_id=person_id, roles="", department_id=None, active=True, created_at=_now())
        db.add(op)
    op.roles = " ".join(sorted(roles))
    op.department_id = department_id
    op.active = active
    db.flush()
    rt.audit.record(
        db, actor=actor, action="identity.operator.set", target=f"person:{person_id}", details={"roles": sorted(roles), "department": department_id, "active": active}
    )
    return OperatorView(op.id, op.person_id, frozenset(op.roles.split()), op.department_id, op.active)


def get_operator(db: Session, person_id: str) -> OperatorView | None:
    op = db.execute(select(Operator).where(Operator.person_id == person_id)).scalar_one_or_none()
    if op is None:
        return None
    return OperatorView(op.id, op.person_id, frozenset(op.roles.split()), op.department_id, op.active)


def list_operators(db: Session) -> list[OperatorView]:
    return [OperatorView(o.id, o.person_id, frozenset(o.roles.split()), o.department_id, o.active) for o in db.execute(select(Operator)).scalars()]


# -- vault rotation --------------------------------------------------------------------------------


def reencrypt_all(rt: Runtime, db: Session, *, batch: int = 500) -> int:
    """Re-encrypt every person's personal fields under the vault's active data key."""
    v = rt.vault
    active = v.active_key_id
    count = 0
    for p in db.execute(select(Person)).scalars():
        for field, ctx in (("id_number_ct", CTX_ID), ("phone_ct", CTX_PHONE), ("email_ct", CTX_EMAIL)):
            blob = getattr(p, field)
            if blob and v.key_id_of(blob) != active:
                setattr(p, field, v.encrypt(v.decrypt(blob, context=ctx), context=ctx))
                count += 1
        if count and count % batch == 0:
            db.flush()
    return count
