"""Objects shared between concurrent requests are parsed through before they are shared.

asn1crypto parses lazily and not thread-safely: two threads reading the same unparsed structure
can see a child list half built. In the soak that was one verification in a fresh worker reported
TOTAL-FAILED (``signature_unreadable:KeyError``, inside pyhanko_certvalidator reading the cached
CA chain). ``signing.service._shared`` parses what the verification and sealing caches hold.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from asn1crypto import core

from core.security import Actor
from tests.factories import unique_uscc

LICENCE = Path(__file__).resolve().parent.parent / "data" / "signing" / "licence.pdf"


def unparsed_parts(value: Any, path: str = "") -> list[str]:
    """Paths of SEQUENCE / SEQUENCE OF parts whose children are not built yet (lazy)."""
    out: list[str] = []
    if isinstance(value, (core.Sequence, core.SequenceOf)):
        if value.children is None:
            return [path or "<root>"]
        for i, child in enumerate(value.children):
            if isinstance(child, tuple):
                out.append(f"{path}/{i}")
            else:
                out.extend(unparsed_parts(child, f"{path}/{i}"))
    elif isinstance(value, core.Choice) and value._parsed is not None:
        out.extend(unparsed_parts(value.chosen, f"{path}/{value.name}"))
    return out


def test_the_verification_trust_setup_is_parsed_before_it_is_shared(rt) -> None:  # type: ignore[no-untyped-def]
    from asn1crypto import x509

    from signing import service

    rt.extensions.pop("signing", None)  # what a fresh worker starts from
    setup = service.trust_setup(rt)
    shared = [*setup.anchors, *setup.intermediates, *setup.crls]
    assert any(isinstance(c, x509.Certificate) for c in shared) and setup.crls, "expected our chain and CRLs"
    for obj in shared:
        assert unparsed_parts(obj) == [], f"{type(obj).__name__} shared with lazy parts: {unparsed_parts(obj)[:5]}"
    # the detector does see a lazily loaded certificate
    assert unparsed_parts(x509.Certificate.load(setup.anchors[0].dump())) != []


def test_concurrent_first_verifications_in_a_fresh_process_all_pass(rt) -> None:  # type: ignore[no-untyped-def]
    from identity import service as identity
    from signing import pades, service

    with rt.db.transaction() as db:
        dept = identity.register_org(rt, db, Actor.cli(), name="海口市行政审批服务局", uscc=unique_uscc(), type="government")
    with rt.db.transaction() as db:
        seal = service.create_seal(rt, db, Actor.cli(), name="行政审批专用章", department=dept.id)
    with rt.db.transaction() as db:
        sealed = service.seal_pdf(rt, db, Actor.cli(), seal_id=seal.id, pdf=LICENCE.read_bytes(), options=pades.PadesOptions(level="B-T")).pdf
    for _ in range(6):
        rt.extensions.pop("signing", None)
        results: list[str] = []

        def one() -> None:
            report = service.verify_document(rt, sealed)
            results.append(report.indication.value + " " + " ".join(r for s in report.signatures for r in s.reasons))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == ["TOTAL-PASSED "] * 8, results
