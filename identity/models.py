"""Identity registry tables. Personal fields are stored only encrypted (``*_ct``), with a keyed blind
index (``*_idx``) for exact look-up and a masked copy (``*_masked``) for listings."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class Person(Base):
    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    id_number_ct: Mapped[str] = mapped_column(Text)
    id_number_idx: Mapped[str] = mapped_column(String(64), unique=True)
    id_number_masked: Mapped[str] = mapped_column(String(32))
    phone_ct: Mapped[str | None] = mapped_column(Text)
    phone_idx: Mapped[str | None] = mapped_column(String(64), unique=True)
    phone_masked: Mapped[str | None] = mapped_column(String(32))
    email_ct: Mapped[str | None] = mapped_column(Text)
    email_idx: Mapped[str | None] = mapped_column(String(64), unique=True)
    email_masked: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(300), index=True)
    name_en: Mapped[str | None] = mapped_column(String(300))
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    type: Mapped[str] = mapped_column(String(20))  # enterprise | government | institution
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("organisations.id"))
    region: Mapped[str | None] = mapped_column(String(100))
    dns_suffixes: Mapped[str] = mapped_column(Text, default="")  # newline-separated, for server certs
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))


class Membership(Base):
    """A person's staff position in an organisation (department)."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("person_id", "org_id", name="uq_memberships_person_org"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    title: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[str] = mapped_column(String(32))


class Operator(Base):
    """A person with platform roles (service-centre staff, department administrators, auditors)."""

    __tablename__ = "operators"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), unique=True)
    roles: Mapped[str] = mapped_column(String(500))  # space-separated core.security.Role values
    department_id: Mapped[str | None] = mapped_column(ForeignKey("organisations.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[str] = mapped_column(String(32))
