"""Helpers for the CA tests: registry subjects and CSRs made with real keys."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.security import Actor
from tests.factories import unique_id_number, unique_uscc

ACTOR = Actor.cli("ca-tests")
DATA = Path(__file__).resolve().parent.parent / "data" / "ca"
LINT = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "lint_pkix_cert")


def make_csr(key=None, *, cn: str = "Mallory (ignored)", dns: tuple[str, ...] = (), pem: bool = True) -> bytes:  # type: ignore[no-untyped-def]
    key = key or ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    req = b.sign(key, hashes.SHA256())
    return req.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER)


@dataclass
class Subjects:
    person_id: str
    person_name: str
    id_number: str
    email: str
    org_id: str
    uscc: str
    dept_id: str
    dept_uscc: str
    dept_name: str
    suffix: str


@pytest.fixture
def subjects(rt):  # type: ignore[no-untyped-def]
    """A citizen who works in a department, an enterprise, and the department (with a DNS suffix)."""
    from identity import service as ids

    id_number = unique_id_number()
    suffix = f"d{id_number[-8:].lower()}.example.gov.cn"
    email = f"p{id_number.lower()}@example.cn"
    with rt.db.transaction() as db:
        person = ids.register_person(rt, db, ACTOR, name="李四", id_number=id_number, email=email)
        org = ids.register_org(rt, db, ACTOR, name=f"测试科技有限公司{id_number[-4:]}", uscc=unique_uscc())
        dept = ids.register_org(rt, db, ACTOR, name=f"省数据局{id_number[-4:]}", uscc=unique_uscc(), type="government", dns_suffixes=[suffix])
        ids.add_membership(rt, db, ACTOR, person_id=person.id, org_id=dept.id, title="科员")
    return Subjects(person.id, "李四", id_number, email, org.id, org.uscc, dept.id, dept.uscc, dept.name, suffix)


def write_chain(rt, tmp_path: Path) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    from ca import service

    with rt.db.read() as db:
        issuing, root = service.ca_chain(rt, db)
    root_pem, issuing_pem = tmp_path / "root.pem", tmp_path / "issuing.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    issuing_pem.write_bytes(issuing.public_bytes(serialization.Encoding.PEM))
    return root_pem, issuing_pem


def openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, input=input.decode() if input else None, timeout=60)


def pkilint(path: Path) -> subprocess.CompletedProcess[str]:
    """lint_pkix_cert, the pkilint CLI: exit status = number of findings at or above ERROR."""
    return subprocess.run([LINT, "lint", "--severity", "ERROR", str(path)], capture_output=True, text=True, timeout=60)
