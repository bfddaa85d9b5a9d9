"""Identity registry commands: ``person add``, ``org add``, ``operator set``."""

from __future__ import annotations

import sys
from dataclasses import asdict

import typer

from core.security import Actor
from eauth.cli import app, emit
from eauth.cli.platform import runtime
from identity import service

person_app = typer.Typer(no_args_is_help=True, help="Persons (citizens, staff)")
org_app = typer.Typer(no_args_is_help=True, help="Organisations (enterprises, departments, institutions)")
operator_app = typer.Typer(no_args_is_help=True, help="Platform operators and their roles")
app.add_typer(person_app, name="person")
app.add_typer(org_app, name="org")
app.add_typer(operator_app, name="operator")


@person_app.command("add")
def person_add(
    name: str = typer.Option(..., help="Full name."),
    id_number: str = typer.Option(..., "--id-number", help="Resident ID number (GB 11643)."),
    phone: str | None = typer.Option(None, help="Mainland mobile number."),
    email: str | None = typer.Option(None, help="E-mail address."),
    department: str | None = typer.Option(None, help="Department (id, USCC or name) the person works in."),
    title: str | None = typer.Option(None, help="Position in the department."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read a login password from stdin."),
) -> None:
    """Register a person (or find the existing record for that ID number)."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    actor = Actor.cli()
    with runtime() as rt, rt.db.transaction() as db:
        person = service.register_person(rt, db, actor, name=name, id_number=id_number, phone=phone, email=email)
        if department:
            org = service.resolve_org(db, department)
            service.add_membership(rt, db, actor, person_id=person.id, org_id=org.id, title=title)
        if password is not None:
            from auth_service.service import set_password

            set_password(rt, db, actor, person_id=person.id, password=password)
    status = "registered" if person.created else "already registered"
    emit(asdict(person), f"{person.id}  {person.name}  {person.id_number_masked}  ({status})")


@person_app.command("show")
def person_show(ref: str = typer.Argument(..., help="Person id or ID number.")) -> None:
    with runtime() as rt, rt.db.read() as db:
        found = service.find_person_by_id_number(rt, db, ref) if len(ref) == 18 else None
        person = found or service.get_person(db, ref)
        memberships = [asdict(m) for m in service.memberships_of(db, person.id)]
    emit({**asdict(person), "memberships": memberships})


@org_app.command("add")
def org_add(
    name: str = typer.Option(..., help="Registered name."),
    uscc: str = typer.Option(..., help="Unified social credit code (GB 32100)."),
    type: str = typer.Option("enterprise", help="enterprise | government | institution."),
    parent: str | None = typer.Option(None, help="Parent organisation (id, USCC or name)."),
    dns_suffix: list[str] = typer.Option([], "--dns-suffix", help="DNS suffix this organisation may get server certificates for."),
    name_en: str | None = typer.Option(None, "--name-en", help="English name."),
) -> None:
    """Register an organisation (or find the existing record for that USCC)."""
    with runtime() as rt, rt.db.transaction() as db:
        parent_id = service.resolve_org(db, parent).id if parent else None
        org = service.register_org(rt, db, Actor.cli(), name=name, uscc=uscc, type=type, parent_id=parent_id, dns_suffixes=dns_suffix, name_en=name_en)
    status = "registered" if org.created else "already registered"
    emit(asdict(org), f"{org.id}  {org.name}  {org.uscc}  ({status})")


@operator_app.command("set")
def operator_set(
    person: str = typer.Argument(..., help="Person id or ID number."),
    role: list[str] = typer.Option(..., "--role", help="Role (repeatable)."),
    department: str | None = typer.Option(None, help="Department for department administrators."),
) -> None:
    """Give a person platform roles."""
    with runtime() as rt, rt.db.transaction() as db:
        found = service.find_person_by_id_number(rt, db, person) if len(person) == 18 else None
        person_id = found.id if found else service.get_person(db, person).id
        dept = service.resolve_org(db, department).id if department else None
        op = service.set_operator(rt, db, Actor.cli(), person_id=person_id, roles=set(role), department_id=dept)
    emit({"person_id": op.person_id, "roles": sorted(op.roles), "department_id": op.department_id})
