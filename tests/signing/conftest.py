"""Signing fixtures on the shared platform (``rt``): a government department, a seal that a
department system (OAuth client) may use, real access tokens for that client, and the CA chain as
PEM files for openssl / pdfsig."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

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


@dataclass(frozen=True)
class DeptClient:
    client_id: str
    token: str  # scopes: seal:<seal id> verify


@pytest.fixture(scope="session")
def dept_client(rt):  # type: ignore[no-untyped-def]
    """A department system registered for client_credentials (its token is minted per seal)."""
    from auth_service import service as sso
    from core.security import Actor

    with rt.db.transaction() as db:
        client, _ = sso.register_client(rt, db, Actor.cli(), name="市场监管审批系统", grant_types=["client_credentials"], scopes=["verify"])
    return client


@pytest.fixture(scope="session")
def seal(rt, department, dept_client):  # type: ignore[no-untyped-def]
    from core.security import Actor
    from signing import service

    service.tsa_authority(rt)  # outside any transaction, as web workers do at start-up
    with rt.db.transaction() as db:
        return service.create_seal(rt, db, Actor.cli(), name="行政审批专用章", department=department.id, clients=[dept_client.client_id])


def mint(rt, client_id: str, scope: str) -> str:  # type: ignore[no-untyped-def]
    """A real RFC 9068 access token (signed in the HSM) for ``client_id`` acting as itself."""
    from auth_service.oidc.access_token import issue_access_token

    return issue_access_token(rt, client_id=client_id, subject=client_id, scope=scope)[0]


@pytest.fixture(scope="session")
def seal_token(rt, seal, dept_client) -> str:  # type: ignore[no-untyped-def]
    return mint(rt, dept_client.client_id, f"seal:{seal.id} verify")


@pytest.fixture(scope="session")
def pki(rt, tmp_path_factory):  # type: ignore[no-untyped-def]
    """root.pem, issuing.pem and an NSS database trusting our root (certutil -t C,C,C)."""
    from ca import service as ca_service

    d = tmp_path_factory.mktemp("pki")
    with rt.db.read() as db:
        issuing, root = ca_service.ca_chain(rt, db)
    (d / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (d / "issuing.pem").write_bytes(issuing.public_bytes(serialization.Encoding.PEM))
    nss = d / "nss"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "eauth-root", "-t", "C,C,C", "-i", str(d / "root.pem")], check=True, capture_output=True)
    return d


def openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, input=input, timeout=60)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
