"""Pre-issuance linting with pkilint (the RFC 5280 certificate linter), in-process.

Boulder's order: the *exact* TBS is linted before the CA key signs it. We sign the same
``CertificateBuilder`` with a throwaway software key of the CA key's algorithm (the TBS bytes do not
depend on the signing key: issuer, AKI and signature algorithm all come from the builder), lint that
copy, and only then ask the HSM for a signature. ``ca.service`` compares the two TBS encodings
after signing, so a lint of one certificate can never vouch for a different one.

The validators are the ones ``lint_pkix_cert`` builds (pkilint/bin/lint_pkix_cert.py), constructed
once per process. What we do differently is only *how the tree is walked*: pkilint's
``ValidatorContainer`` asks every validator ``match(node)`` at every node (≈ 5,600 calls for one of
our certificates, most of the lint's cost). The part of ``match`` that depends only on the node's
path and the class of its value (``path``, ``path_re``, ``pdu_class``) is the same for every
certificate with the same structure, so :class:`_Walker` remembers, per ``(path, class)``, which
validators pass it, and calls the full ``match`` (predicates, OID checks) and ``validate`` on
every node of every certificate, in pkilint's order. The findings are pkilint's findings, node for
node (``tests/ca/test_lint.py`` compares the two walks on good and deliberately bad certificates);
nothing about a certificate's *content* is remembered from one lint to the next.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

# Severities that refuse issuance (pkilint ValidationFindingSeverity names).
BLOCKING = ("FATAL", "ERROR")

_log = logging.getLogger("pkilint.validation")


@dataclass(frozen=True)
class Finding:
    severity: str
    code: str
    path: str
    message: str | None = None

    def __str__(self) -> str:
        text = f"{self.severity} {self.code} @ {self.path}"
        return f"{text}: {self.message}" if self.message else text


def _stock_validator() -> Any:
    """The validator tree ``lint_pkix_cert`` builds."""
    from pkilint.pkix import certificate, extension, name

    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    return _stock_validator()


def _guarded_matches() -> frozenset[Any]:
    """``match`` methods that begin with ``if not super().match(node): return False`` (or
    ``return super().match(node) and …``) where ``super()`` is ``NodeVisitor`` — read in pkilint
    0.13: for them too a failed path/class test means no match. Any other overridden ``match`` is
    called on every node."""
    from pkilint import document
    from pkilint.pkix import extension
    from pkilint.pkix.certificate import certificate_extension
    from pkilint.validation import TypeMatchingValidator

    out = set()
    for cls in (extension.ExtensionCriticalityValidator, TypeMatchingValidator, certificate_extension.ExtendedKeyUsageCriticalityValidator):
        defining = [k for k in cls.__mro__ if "match" in k.__dict__]
        if defining == [cls, document.NodeVisitor]:
            out.add(cls.__dict__["match"])
    return frozenset(out)


class _Walker:
    """pkilint's ``ValidatorContainer.validate`` with the static part of ``match`` remembered.

    For each validator of a container, ``static`` tells whether a failed ``path`` / ``path_re`` /
    ``pdu_class`` test settles the match (plain ``NodeVisitor.match``, or a ``match`` known to call it
    first) and ``full`` whether anything beyond those tests remains to be asked of the node
    (predicate, supertype, an overridden ``match``). Nested ``ValidatorContainer``s (exactly that
    class or a subclass that overrides none of its walking) are walked the same way, with the
    exception handling of ``Validator.validate_wrapper``."""

    _CACHE_LIMIT = 20_000  # (path, class) pairs per container; certificates have a few hundred

    def __init__(self, container: Any) -> None:
        from pkilint import document, validation

        self._validation = validation
        self.container = container
        guarded = _guarded_matches()
        self.entries: list[tuple[Any, bool, bool, _Walker | None]] = []
        for v in container.validators:
            cls = type(v)
            plain = cls.match is document.NodeVisitor.match
            static = plain or cls.match in guarded
            full = (not plain) or v._predicate is not None or v._pdu_supertype is not None
            sub = None
            if isinstance(v, validation.ValidatorContainer) and all(
                getattr(cls, attr) is getattr(validation.ValidatorContainer, attr) for attr in ("validate", "_validate_rec", "validate_wrapper")
            ):
                sub = _Walker(v)
            self.entries.append((v, static, full or not static, sub))
        self._plans: dict[tuple[str, type], tuple[tuple[Any, bool, _Walker | None], ...]] = {}

    def _plan(self, path: str, pdu_class: type) -> tuple[tuple[Any, bool, _Walker | None], ...]:
        plan = []
        for v, static, full, sub in self.entries:
            if static:
                if v._path is not None and v._path != path:
                    continue
                if v._path_re is not None and v._path_re.match(path) is None:
                    continue
                if v._pdu_class is not None and not issubclass(pdu_class, v._pdu_class):
                    continue
            plan.append((v, full, sub))
        if len(self._plans) >= self._CACHE_LIMIT:
            self._plans.clear()
        out = self._plans[(path, pdu_class)] = tuple(plan)
        return out

    def walk(self, node: Any, results: list[Any]) -> None:
        key = (node.path, type(node.pdu))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(*key)
        for v, full, sub in plan:
            if full and not v.match(node):
                continue
            if sub is None:
                result = v.validate_wrapper(node)
                if isinstance(result, list):
                    results += result
                else:
                    results.append(result)
            else:
                results += sub.validate_wrapper(node)
        for child in node.children.values():
            self.walk(child, results)

    def validate_wrapper(self, node: Any) -> list[Any]:
        """``Validator.validate_wrapper`` for a container: its results, or one finding if the walk raised."""
        validation = self._validation
        try:
            results: list[Any] = []
            self.walk(node, results)
            return results
        except validation.ValidationFindingEncountered as e:
            finding = validation.ValidationFindingDescription(e.finding, e.message)
        except Exception as e:  # noqa: BLE001 - pkilint turns any exception into a FATAL finding
            _log.exception("Unhandled exception occurred when executing validator %s on node %s", self.container.name, node.path)
            finding = validation.ValidationFindingDescription(self.container.VALIDATION_FINDING_UNHANDLED_EXCEPTION, str(e))
        return [validation.ValidationResult(self.container, node, [finding])]


@functools.lru_cache(maxsize=1)
def _walker() -> _Walker:
    return _Walker(_validator())


def warm() -> None:
    """Build the validators and the walker (process start-up, so the first request does not pay)."""
    _walker()


_lock = threading.Lock()  # pkilint validators keep per-run state; one document at a time


def _findings(results: list[Any]) -> list[Finding]:
    out: list[Finding] = []
    for result in results:
        for fd in result.finding_descriptions:
            out.append(Finding(fd.finding.severity.name, fd.finding.code, str(result.node.path), fd.message))
    return out


def lint_der(der: bytes) -> list[Finding]:
    """Every finding pkilint reports for a DER certificate."""
    from pkilint import loader

    with _lock:
        doc = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "tbs")
        results: list[Any] = []
        _walker().walk(doc.root, results)  # as ValidatorContainer.validate: no wrapper at the root
    return _findings(results)


def lint_der_stock(der: bytes) -> list[Finding]:
    """The same lint walked by pkilint's own ``ValidatorContainer`` (reference for tests and the bench)."""
    from pkilint import loader

    with _lock:
        doc = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "tbs")
        results = _validator().validate(doc.root)
    return _findings(results)


def blocking(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity in BLOCKING]


@functools.lru_cache(maxsize=4)
def throwaway_key(kind: str) -> Any:
    """A software key used only to sign the lint copy: never trusted, never stored."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def throwaway_for(ca_key: Any) -> Any:
    return throwaway_key("rsa" if isinstance(ca_key, rsa.RSAPrivateKey) else "ec")
