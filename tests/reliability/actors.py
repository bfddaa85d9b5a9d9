"""Small builders the reliability tests share: subscribers' CSRs, persons, API clients with tokens."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.security import Actor
from tests.factories import unique_id_number


def make_csr(*, dns: list[str] | None = None) -> str:
    """A subscriber's PKCS#10 request (their own software key, as a citizen's would be)."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "subscriber")]))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def register_person(rt: Any, name: str = "张三") -> str:
    from identity.service import register_person as register

    with rt.db.transaction() as db:
        return register(rt, db, Actor.cli(), name=name, id_number=unique_id_number()).id


def client_token(rt: Any, scopes: list[str], *, lifetime: int = 3600) -> str:
    """A department system's access token (client_credentials), signed in the HSM like any other."""
    from auth_service.oidc.access_token import issue_access_token
    from auth_service.service import register_client

    with rt.db.transaction() as db:
        view, _secret = register_client(
            rt, db, Actor.cli(), name="reliability tests", grant_types=["client_credentials"], scopes=scopes, redirect_uris=[]
        )
    token, _expires, _jti = issue_access_token(rt, client_id=view.client_id, subject=view.client_id, scope=" ".join(scopes), lifetime=lifetime)
    return token
