"""pyHanko signers backed by the token.

``pyhanko_signer`` wraps a pyHanko ``PKCS11Signer`` on a dedicated session (pyHanko drives the
session itself, so it cannot share the pool). SoftHSM2 2.6 lacks CKM_ECDSA_SHA256, hence
``use_raw_mechanism=True`` for EC keys: pyHanko hashes, the token signs the digest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hsm.keys import HsmEcPrivateKey, translate_pkcs11_error

if TYPE_CHECKING:
    from asn1crypto import x509 as asn1_x509

    from hsm.token import Token


@contextlib.contextmanager
def pyhanko_signer(
    token: Token,
    label: str,
    signing_cert: asn1_x509.Certificate,
    other_certs: Sequence[asn1_x509.Certificate] = (),
) -> Iterator[Any]:
    """Yield a ``pyhanko.sign.pkcs11.PKCS11Signer`` for ``label``; the session is closed afterwards."""
    from pyhanko.sign.pkcs11 import PKCS11Signer

    key = token.key(label)
    with translate_pkcs11_error(f"open signer {label}", label=label), token.session() as sess:
        yield PKCS11Signer(
            sess,
            key_label=label,
            signing_cert=signing_cert,
            other_certs=list(other_certs),
            use_raw_mechanism=isinstance(key, HsmEcPrivateKey),
        )
