"""A worker process for the crash test: issues, revokes and seals in a loop until it is killed.

Run as ``python -m tests.reliability.crash_worker PERSON_ID SEAL_ID SEED`` with the platform's
``EAUTH_*`` variables (and ``SOFTHSM2_CONF``) in the environment. It uses the same service
functions the API and CLI use, and starts the way the server does (``resolve_pending`` from the CA
router's set-up). After each operation's transaction has committed it prints one line —
``issue <serial>``, ``revoke <serial>``, ``seal <document id>`` — and flushes, so whatever the
test reads was acknowledged by the platform. SIGKILL may land anywhere, including between the
commit and the print: acknowledged ⊆ stored, never the reverse.
"""

from __future__ import annotations

import random
import sys


def main() -> None:
    person_id, seal_id, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from pathlib import Path

    from ca import service as ca_service
    from ca import revocation
    from ca.web import certificates as ca_web
    from core.security import Actor
    from core.settings import load_settings
    from eauth.runtime import build_runtime
    from signing import pades
    from signing import service as signing_service
    from tests.reliability.actors import make_csr

    rt = build_runtime(load_settings())
    ca_web.setup(rt)  # what a restarted server does first: retire serials left pending
    actor = Actor.cli()
    rng = random.Random(seed)
    pdf = (Path(__file__).resolve().parent.parent / "data" / "signing" / "licence.pdf").read_bytes()
    mine: list[str] = []
    print("ready", flush=True)
    while True:
        roll = rng.random()
        if roll < 0.2 and mine:
            serial = mine.pop(rng.randrange(len(mine)))
            with rt.db.transaction() as db:
                revocation.revoke(rt, db, actor, serial=serial, reason=rng.choice(["keyCompromise", "affiliationChanged", "superseded"]))
            print("revoke", serial, flush=True)
        elif roll < 0.27:
            with rt.db.transaction() as db:
                sealed = signing_service.seal_pdf(rt, db, actor, seal_id=seal_id, pdf=pdf, options=pades.PadesOptions(level="B-B"))
            print("seal", sealed.document.id, flush=True)
        else:
            with rt.db.transaction() as db:
                cert = ca_service.issue_certificate(rt, db, actor, profile="citizen", csr=make_csr().encode(), subject_id=person_id)
            mine.append(cert.serial)
            print("issue", cert.serial, flush=True)


if __name__ == "__main__":
    main()
