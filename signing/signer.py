"""pyHanko adapters: a ``Signer`` whose key is an HSM key object, and a ``TimeStamper`` that asks our
own timestamp authority in-process.

``HsmSigner`` calls ``sign()`` on the key objects ``hsm`` hands out (``cryptography`` interfaces,
signature computed in the token from a digest hashed here), so sealing borrows a pooled session
like every other HSM operation instead of pinning a dedicated one, and the same code path works
with a software key in tests of *foreign* artefacts.

``InProcessTimeStamper`` gives pyHanko the TSA without an HTTP round trip (and without a worker
calling itself through the network). One instance per process is reused: pyHanko caches its
dummy response and TSA certificates on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


class HsmSigner(Signer):
    """A pyHanko signer over a ``cryptography`` private-key object (an HSM key in production)."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        signing_cert: asn1_x509.Certificate,
        chain: Sequence[asn1_x509.Certificate] = (),
        *,
        embed_roots: bool = True,
    ) -> None:
        super().__init__(
            signing_cert=signing_cert,
            # pyHanko embeds the signing certificate itself; the registry holds the rest of the chain
            cert_registry=SimpleCertificateStore.from_certs([c for c in chain if c.dump() != signing_cert.dump()]),
            embed_roots=embed_roots,
        )
        self.key = key

    def signature_size(self) -> int:
        """Upper bound of a DER signature from this key (for ``bytes_reserved``)."""
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            coordinate = (self.key.curve.key_size + 7) // 8
            return 2 * coordinate + 9
        return self.key.key_size // 8

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if dry_run:
            return bytes(self.signature_size())
        algorithm = _HASHES[digest_algorithm.lower()]()
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(data, ec.ECDSA(algorithm))
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
        if mechanism.signature_algo == "rsassa_pss":
            return self.key.sign(data, padding.PSS(padding.MGF1(algorithm), algorithm.digest_size), algorithm)
        return self.key.sign(data, padding.PKCS1v15(), algorithm)


class InProcessTimeStamper(TimeStamper):
    """pyHanko ``TimeStamper`` answered by ``respond(query_der) -> response_der`` in this process."""

    def __init__(self, respond: Callable[[bytes], bytes]) -> None:
        super().__init__(include_nonce=True)
        self._respond = respond

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return tsp.TimeStampResp.load(self._respond(req.dump()))
