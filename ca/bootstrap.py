"""What `eauth init` does for this package (idempotent)."""

from __future__ import annotations

from ca import hierarchy, publisher, service
from core.runtime import Runtime
from core.security import Actor


def initialise(rt: Runtime, actor: Actor) -> list[str]:
    """Create the root and the issuing CA once (key ceremony, audited); resolve interrupted
    issuances. Returns lines to show the operator."""
    lines: list[str] = []
    with rt.db.transaction() as db:
        before = {a.name for a in hierarchy.list_authorities(db) if not a.awaiting_signature}
        root = hierarchy.create_root(rt, db, actor)
        issuing = hierarchy.create_issuing(rt, db, actor, rt.settings.ca_issuing_name)
    with rt.db.transaction() as db:
        retired = service.resolve_pending(rt, db, actor)
    lines_revocation = publisher.initialise(rt, actor)  # OCSP responder certificates, first CRLs
    for view in (root, issuing):
        state = "exists" if view.name in before else "created"
        lines.append(f"CA {view.name} ({state}): key {view.key_label}, certificate sha256 {view.sha256}, valid until {view.not_after}")
    lines.extend(lines_revocation)
    if retired:
        lines.append(f"CA: {len(retired)} interrupted issuance(s) marked failed (serials retired)")
    return lines
