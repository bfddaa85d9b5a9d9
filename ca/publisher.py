"""Keeps revocation information current in a serving process (one daemon thread per process).

At start (all processes): load the fresh pre-signed OCSP responses into the process's cache
(``ca.ocsp.warm_cache``), so known serials are answered without a database read.

Every 0.2 s (all processes): drop in-process OCSP copies whose status changed in *any* process
(``ca.ocsp.poll_changes``) and reload CRLs published since (``ca.crl`` numbers).

Every second (one process per host, chosen by an flock on ``$EAUTH_HOME/run/publisher.lock``;
other hosts are safe too, because every write below is conditional or taken under a row lock):
- CRLs re-published after a status change (debounced: changes in the same second share a CRL
  number) and on schedule at half their validity, long before nextUpdate;
- OCSP responses pre-signed for newly issued certificates (those created since the last scan;
  once a minute the last ten minutes again) and re-signed before 40 % of their validity;
  responder certificates renewed when a third of their life remains.
Work only starts after a read shows there is some, so an idle publisher never takes a write lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from datetime import timedelta
from typing import IO

from sqlalchemy import select

from ca import crl, ocsp
from ca.models import CertificateAuthority
from core import clock
from core.runtime import Runtime
from core.security import Actor

log = logging.getLogger("eauth.ca.publisher")
EXTENSION_KEY = "ca.publisher"
POLL_SECONDS = 0.2
WORK_SECONDS = 1.0
PRESIGN_LOOKBACK_SECONDS = 60.0


class Publisher(threading.Thread):
    def __init__(self, rt: Runtime) -> None:
        super().__init__(name="eauth-revocation-publisher", daemon=True)
        self.rt = rt
        self.stop_event = threading.Event()
        self._lock_file: IO[str] | None = None
        self._presign_since = ""
        self._last_work = 0.0
        self._last_slow = 0.0
        self._last_lookback = 0.0

    # -- leadership: one process per host does the scheduled signing --------------------------------

    def _leader(self) -> bool:
        if self._lock_file is not None:
            return True
        run = self.rt.settings.home / "run"
        run.mkdir(parents=True, exist_ok=True)
        fh = open(run / "publisher.lock", "a+")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_file = fh
        return True

    # -- the loop --------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            loaded = ocsp.warm_cache(self.rt)
            log.info("OCSP cache warmed with %d pre-signed responses", loaded)
        except Exception:  # noqa: BLE001 - a cold cache still answers (from the database)
            log.warning("OCSP cache warm-up failed", exc_info=True)
        while not self.stop_event.wait(POLL_SECONDS):
            try:
                ocsp.poll_changes(self.rt)
                crl.poll_published(self.rt)
            except Exception:  # noqa: BLE001 - keep serving; the next poll retries
                log.warning("revocation poll failed", exc_info=True)
            now = time.monotonic()
            if now - self._last_work < WORK_SECONDS:
                continue
            self._last_work = now
            try:
                if self._leader():
                    self.scheduled_work(slow=now - self._last_slow >= 5)
                    if now - self._last_slow >= 5:
                        self._last_slow = now
            except Exception:  # noqa: BLE001
                log.warning("revocation publication failed", exc_info=True)

    def scheduled_work(self, *, slow: bool = False) -> None:
        rt = self.rt
        actor = Actor.system("publisher")
        if slow:
            ocsp.reload_issuers(rt)
            for name in ocsp.state(rt).issuers:
                ocsp.ensure_responder(rt, actor, name)  # a read unless renewal is due
        with rt.db.read() as db:
            due = crl.due_for_publication(db)
        for name in due:
            with rt.db.transaction() as db:
                # Re-check under the state row lock: another host may have just published.
                crl.revocation_state(db, name)
                if name in crl.due_for_publication(db):
                    crl.publish_crls(rt, db, actor, name, trigger="scheduled")
        if due:
            crl.poll_published(rt)
        for _ in range(10):  # bounded work per tick
            if ocsp.refresh_stale(rt) == 0:
                break
        started = clock.now()
        since = self._presign_since
        if since and time.monotonic() - self._last_lookback >= PRESIGN_LOOKBACK_SECONDS:
            # A serial reserved a while ago may be issued a little later (issuance finishes within
            # minutes or fails): once a minute, the last ten minutes again.
            since = min(since, ocsp._iso(started - timedelta(minutes=10)))
            self._last_lookback = time.monotonic()
        for _ in range(10):
            count, newest = ocsp.presign_missing(rt, since=since)
            if count == 0:
                # Caught up: next second only what was created since just before this scan (an
                # index range scan on created_at, not the whole window — 100,000 certificates
                # issued in ten minutes made that a database-bound second of work every second).
                self._presign_since = max(newest, ocsp._iso(started - timedelta(seconds=5)))
                break
            since = self._presign_since = newest

    def stop(self) -> None:
        self.stop_event.set()
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
                self._lock_file.close()
            self._lock_file = None


def start(rt: Runtime) -> Publisher:
    """Start the process's publisher once (idempotent)."""
    existing = rt.extensions.get(EXTENSION_KEY)
    if existing is not None and existing.is_alive():
        return existing
    publisher = Publisher(rt)
    rt.extensions[EXTENSION_KEY] = publisher
    publisher.start()
    return publisher


def stop(rt: Runtime) -> None:
    publisher = rt.extensions.pop(EXTENSION_KEY, None)
    if publisher is not None:
        publisher.stop()
        publisher.join(timeout=5)


def initialise(rt: Runtime, actor: Actor) -> list[str]:
    """``eauth init``: certify each issuing CA's OCSP responder, publish first CRLs (the root's
    included — init is a ceremony). Idempotent: existing responders and CRLs are kept."""
    lines = []
    with rt.db.read() as db:
        names = list(ocsp.load_issuers(db))
        roots = [
            name
            for name, in db.execute(select(CertificateAuthority.name).where(CertificateAuthority.is_root.is_(True), CertificateAuthority.der.is_not(None)))
        ]
    for name in names:
        responder = ocsp.ensure_responder(rt, actor, name)
        lines.append(f"OCSP responder for {name}: certificate {responder.serial}, valid until {ocsp._iso(responder.not_after)}")
    for name in roots + names:
        with rt.db.transaction() as db:
            if crl.latest_crl(db, name) is None:
                published = crl.publish_crls(rt, db, actor, name, trigger="init")
                lines.append(f"CRL {name} #{published[0].number} published ({len(published)} scope(s))")
    return lines
