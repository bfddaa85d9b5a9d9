"""Signing fixtures: a government department and a seal on the shared platform (``rt``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import unique_uscc

DATA = Path(__file__).resolve().parent.parent / "data" / "signing"


@pytest.fixture(scope="session")
def licence_pdf() -> bytes:
    return (DATA / "licence.pdf").read_bytes()


@pytest.fixture(scope="session")
def department(rt):  # type: ignore[no-untyped-def]
    import identity.service as identity
    from core.security import Actor

    with rt.db.transaction() as db:
        return identity.register_org(rt, db, Actor.cli(), name="海口市市场监督管理局", uscc=unique_uscc(), type="government")


@pytest.fixture(scope="session")
def seal(rt, department):  # type: ignore[no-untyped-def]
    from core.security import Actor
    from signing import service

    with rt.db.transaction() as db:
        return service.create_seal(rt, db, Actor.cli(), name="行政审批专用章", department=department.id, clients=["dept-system-1"])
