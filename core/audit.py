"""Tamper-evident audit log.

Each entry carries ``prev_hash`` and ``hash = SHA-256(canonical JSON of the entry incl. prev_hash)``
and is written in the *same transaction* as the change it records. The chain head lives in a
one-row table updated with a row lock, so concurrent writers serialise on it (PostgreSQL:
``SELECT … FOR UPDATE``; SQLite: every write transaction is ``BEGIN IMMEDIATE``).

Every ``checkpoint_every`` entries (and at shutdown) an HSM key (``audit/1``) signs
``seq || hash``; ``verify`` recomputes the chain and checks every checkpoint against the public
key in the token, so rewriting the whole table after the last checkpoint is the only undetected
edit, and that window is bounded.

A checkpoint that falls due while the token fails is skipped, loudly, not allowed to fail the
transaction it falls in: that transaction is often the one recording the token's failure (an
issuance whose signature failed), and losing that entry would be worse than a wider window until
the next checkpoint. The process that skipped one owes it: its next entry after
``CHECKPOINT_RETRY_SECONDS`` tries again at that entry (so the window closes as soon as the token
is back), besides the next multiple, ``eauth audit checkpoint`` and shutdown.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text, bindparam, event, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from core import clock, metrics
from core.db import Base, Database
from core.pii import mask_value
from core.security import Actor

log = logging.getLogger("eauth.audit")
CHECKPOINT_RETRY_SECONDS = 5.0  # a skipped checkpoint is retried at most this often (not per entry while the token is down)

if TYPE_CHECKING:
    from hsm.token import Token


# -- metrics for audited events ------------------------------------------------------------------
# Each entry is noted on its session and counted (core.metrics.audited) once that session commits;
# a rollback forgets it. So a counter never shows an issuance, revocation, login or seal that the
# audit log does not hold.

_NOTED = "eauth.audited"


def _note(session: Session, action: str, target: str, details: dict[str, Any]) -> None:
    session.info.setdefault(_NOTED, []).append((action, target, details))


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for action, target, details in session.info.pop(_NOTED, ()):
        try:
            metrics.audited(action, target, details)
        except Exception:  # noqa: BLE001 - a metric must never fail a transaction that committed
            logging.getLogger("eauth.metrics").exception("counting audited %s", action)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_NOTED, None)


GENESIS = "0" * 64
AUDIT_KEY_LABEL = "audit/1"


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(32))  # ISO 8601 UTC, microseconds: hashed as written
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str] = mapped_column(String(300), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, PII masked
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[str] = mapped_column(String(32))
    key_label: Mapped[str] = mapped_column(String(100))
    signature: Mapped[bytes] = mapped_column(LargeBinary)


# record_many's statements, built once (constructing a statement costs about as much as running it)
_HEAD_FOR_UPDATE = select(AuditHead.__table__.c.seq, AuditHead.__table__.c.hash).where(AuditHead.__table__.c.id == 1).with_for_update()
_INSERT_ENTRIES = insert(AuditEntry.__table__)
_MOVE_HEAD = update(AuditHead.__table__).where(AuditHead.__table__.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(*, seq: int, at: str, actor: str, action: str, target: str, outcome: str, details: str, prev_hash: str) -> str:
    body = canonical(
        {"seq": seq, "at": at, "actor": actor, "action": action, "target": target, "outcome": outcome, "details": details, "prev": prev_hash}
    )
    return hashlib.sha256(body.encode()).hexdigest()


def _checkpoint_message(seq: int, digest: str) -> bytes:
    return f"eauth-audit-checkpoint:{seq}:{digest}".encode()


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: str
    actor: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any]
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    checkpoints: int
    first_broken_seq: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "first_broken_seq": self.first_broken_seq,
            "reason": self.reason,
        }


class AuditLog:
    """Appends entries and signs checkpoints. One per runtime."""

    def __init__(self, token: Token | None, *, checkpoint_every: int = 1000) -> None:
        self._token = token
        self.checkpoint_every = checkpoint_every
        self._owed_since: float | None = None  # monotonic time of the last failed checkpoint attempt

    def _checkpoint_due(self, seq: int) -> bool:
        if self._token is None:
            return False
        if seq % self.checkpoint_every == 0:
            return True
        return self._owed_since is not None and time.monotonic() - self._owed_since >= CHECKPOINT_RETRY_SECONDS

    def ensure_key(self) -> None:
        """Create the checkpoint key once (``eauth init``)."""
        from hsm.keys import KeySpec

        if self._token is not None and not self._token.has_key(AUDIT_KEY_LABEL):
            self._token.generate(KeySpec.parse("ec-p256"), AUDIT_KEY_LABEL)

    def record(
        self,
        session: Session,
        *,
        actor: Actor | str,
        action: str,
        target: str = "",
        outcome: str = "success",
        details: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one entry inside the caller's transaction (commit happens with the change)."""
        actor_ref = actor.ref if isinstance(actor, Actor) else actor
        head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
        if head is None:
            head = AuditHead(id=1, seq=0, hash=GENESIS)
            session.add(head)
        seq = head.seq + 1
        at = clock.now().astimezone(UTC).isoformat(timespec="microseconds")
        masked = mask_value(details or {})
        details_json = canonical(masked)
        digest = entry_hash(
            seq=seq, at=at, actor=actor_ref, action=action, target=str(target), outcome=outcome, details=details_json, prev_hash=head.hash
        )
        session.add(
            AuditEntry(
                seq=seq, at=at, actor=actor_ref, action=action, target=str(target), outcome=outcome, details=details_json, prev_hash=head.hash, hash=digest
            )
        )
        head.seq = seq
        head.hash = digest
        if self._checkpoint_due(seq):
            self._due_checkpoint(session, seq, digest)
        _note(session, action, str(target), masked)
        return AuditRecord(seq, at, actor_ref, action, str(target), outcome, masked, digest)

    def record_many(self, session: Session, entries: list[dict[str, Any]]) -> list[AuditRecord]:
        """Append several entries (``actor``, ``action``, ``target``, ``outcome``, ``details`` each)
        in order, with one head lock and one bulk INSERT: the same chain as calling :meth:`record`
        for each, for writers that group-commit high-rate events (token issuance to clients)."""
        if not entries:
            return []
        # Core statements, not the ORM unit of work (an issuance-rate path: the ORM flush of the head
        # cost more than the entries). Anything pending is flushed first, and an ORM-loaded head in
        # this session is expired afterwards, so record() in the same session sees the new head.
        session.flush()
        conn = session.connection()
        found = conn.execute(_HEAD_FOR_UPDATE).one_or_none()
        if found is None:
            conn.execute(insert(AuditHead.__table__).values(id=1, seq=0, hash=GENESIS))
            seq, prev = 0, GENESIS
        else:
            seq, prev = found.seq, found.hash
        rows: list[dict[str, Any]] = []
        records: list[AuditRecord] = []
        due: list[tuple[int, str]] = []
        for entry in entries:
            actor = entry["actor"]
            actor_ref = actor.ref if isinstance(actor, Actor) else actor
            target, outcome = str(entry.get("target", "")), entry.get("outcome", "success")
            seq += 1
            at = clock.now().astimezone(UTC).isoformat(timespec="microseconds")
            masked = mask_value(entry.get("details") or {})
            details_json = canonical(masked)
            digest = entry_hash(seq=seq, at=at, actor=actor_ref, action=entry["action"], target=target, outcome=outcome, details=details_json, prev_hash=prev)
            rows.append({"seq": seq, "at": at, "actor": actor_ref, "action": entry["action"], "target": target, "outcome": outcome, "details": details_json, "prev_hash": prev, "hash": digest})
            records.append(AuditRecord(seq, at, actor_ref, entry["action"], target, outcome, masked, digest))
            _note(session, entry["action"], target, masked)
            if self._checkpoint_due(seq) and (not due or seq % self.checkpoint_every == 0):  # an owed one once, at the first entry
                due.append((seq, digest))
            prev = digest
        conn.execute(_INSERT_ENTRIES, rows)
        conn.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev})
        for obj in list(session.identity_map.values()):
            if isinstance(obj, AuditHead):
                session.expire(obj)
        for checkpoint_seq, checkpoint_hash in due:
            self._due_checkpoint(session, checkpoint_seq, checkpoint_hash)
        return records

    def _due_checkpoint(self, session: Session, seq: int, digest: str) -> None:
        """The checkpoint every ``checkpoint_every`` entries; skipped when the token fails (module
        docstring). An explicit :meth:`checkpoint` still raises."""
        from hsm.errors import HsmError

        try:
            self._sign_checkpoint(session, seq, digest)
        except HsmError as exc:
            self._owed_since = time.monotonic()
            metrics.AUDIT_CHECKPOINTS_SKIPPED.inc()
            log.error("audit checkpoint at entry %d not signed (%s): the entries are committed; retried at a later entry", seq, exc)
            return
        if self._owed_since is not None and seq % self.checkpoint_every != 0:
            log.warning("audit checkpoint owed since a token failure signed at entry %d", seq)
        self._owed_since = None

    def _sign_checkpoint(self, session: Session, seq: int, digest: str) -> None:
        assert self._token is not None
        key = self._token.key(AUDIT_KEY_LABEL)
        signature = key.sign(_checkpoint_message(seq, digest), ec.ECDSA(hashes.SHA256()))
        session.add(
            AuditCheckpoint(
                seq=seq,
                hash=digest,
                at=clock.now().astimezone(UTC).isoformat(timespec="microseconds"),
                key_label=AUDIT_KEY_LABEL,
                signature=signature,
            )
        )

    def checkpoint(self, db: Database) -> int | None:
        """Sign a checkpoint at the current head if it has none (shutdown, `eauth audit verify`)."""
        if self._token is None:
            return None
        with db.transaction() as session:
            head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
            if head is None or head.seq == 0:
                return None
            if session.get(AuditCheckpoint, head.seq) is not None:
                return head.seq
            self._sign_checkpoint(session, head.seq, head.hash)
            return head.seq

    def verify(self, db: Database, *, batch: int = 5000) -> VerifyResult:
        """Recompute the chain from genesis; check each checkpoint's signature and hash."""
        public = None
        if self._token is not None and self._token.has_key(AUDIT_KEY_LABEL):
            public = self._token.key(AUDIT_KEY_LABEL).public_key()
        prev = GENESIS
        expected_seq = 1
        count = 0
        hashes_at: dict[int, str] = {}
        with db.read() as session:
            checkpoints = list(session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)).scalars())
            wanted = {c.seq for c in checkpoints}
            last_seq = 0
            while True:
                rows = list(
                    session.execute(select(AuditEntry).where(AuditEntry.seq > last_seq).order_by(AuditEntry.seq).limit(batch)).scalars()
                )
                if not rows:
                    break
                for row in rows:
                    if row.seq != expected_seq:
                        reason = "entry missing (deleted)" if row.seq > expected_seq else "entry out of order"
                        return VerifyResult(False, count, 0, expected_seq, reason)
                    if row.prev_hash != prev:
                        return VerifyResult(False, count, 0, row.seq, "previous-hash link broken (entry inserted or altered)")
                    digest = entry_hash(
                        seq=row.seq,
                        at=row.at,
                        actor=row.actor,
                        action=row.action,
                        target=row.target,
                        outcome=row.outcome,
                        details=row.details,
                        prev_hash=row.prev_hash,
                    )
                    if digest != row.hash:
                        return VerifyResult(False, count, 0, row.seq, "entry content does not match its hash (altered)")
                    if row.seq in wanted:
                        hashes_at[row.seq] = digest
                    prev = digest
                    expected_seq += 1
                    count += 1
                    last_seq = row.seq
            head = session.get(AuditHead, 1)
            if head is not None and (head.seq != count or head.hash != prev):
                return VerifyResult(False, count, 0, min(head.seq, count) + 1, "chain head does not match the last entry (tail deleted)")
        for cp in checkpoints:
            if cp.seq not in hashes_at or hashes_at[cp.seq] != cp.hash:
                return VerifyResult(False, count, len(checkpoints), cp.seq, "checkpoint does not match the chain")
            if public is None:
                return VerifyResult(False, count, len(checkpoints), cp.seq, "checkpoint key missing from the token")
            try:
                public.verify(cp.signature, _checkpoint_message(cp.seq, cp.hash), ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                return VerifyResult(False, count, len(checkpoints), cp.seq, "checkpoint signature invalid")
        return VerifyResult(True, count, len(checkpoints))


def daily_counts(session: Session, *, actions: dict[str, tuple[str, ...]], since: datetime) -> dict[str, dict[str, int]]:
    """Entries per UTC day for named groups of actions since ``since`` (dashboards):
    ``{"issued": {"2026-11-25": 3, ...}, ...}``. ``at`` is ISO 8601 UTC, so its first 10 characters
    are the day on every database."""
    from sqlalchemy import func

    out: dict[str, dict[str, int]] = {name: {} for name in actions}
    day = func.substr(AuditEntry.at, 1, 10)
    for name, group in actions.items():
        rows = session.execute(
            select(day, func.count())
            .where(AuditEntry.action.in_(group), AuditEntry.outcome == "success", AuditEntry.at >= since.astimezone(UTC).isoformat(timespec="microseconds"))
            .group_by(day)
        ).all()
        out[name] = {str(d): int(n) for d, n in rows}
    return out


def search(
    session: Session,
    *,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_seq: int | None = None,
) -> list[AuditRecord]:
    """Newest first, keyset-paginated by ``before_seq``."""
    q = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(min(limit, 1000))
    if action:
        q = q.where(AuditEntry.action.like(action.replace("*", "%")))
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if target:
        q = q.where(AuditEntry.target == target)
    if since:
        q = q.where(AuditEntry.at >= since.astimezone(UTC).isoformat(timespec="microseconds"))
    if until:
        q = q.where(AuditEntry.at < until.astimezone(UTC).isoformat(timespec="microseconds"))
    if before_seq:
        q = q.where(AuditEntry.seq < before_seq)
    return [
        AuditRecord(r.seq, r.at, r.actor, r.action, r.target, r.outcome, json.loads(r.details), r.hash)
        for r in session.execute(q).scalars()
    ]
