"""PII vault: envelope encryption of personal fields and keyed blind indexes.

- Data keys (AES-256) encrypt field values with AES-256-GCM in-process; each data key is stored only
  wrapped by ``vault/kek``, an AES-256 key generated in the HSM (AES-GCM inside the token).
- A separate index key computes ``HMAC-SHA256(index_key, context || normalised value)`` so a person
  can be found by ID number without decrypting the table.
- Ciphertext format ``v1.<key id>.<base64(nonce || ct || tag)>``; the field's context (``person.id_number``)
  is the GCM associated data, so a value cannot be moved to another column unnoticed.
- ``rotate()`` adds a new active data key; callers re-encrypt their rows (``eauth vault rotate``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from datetime import UTC
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Boolean, event, Integer, LargeBinary, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from core import clock
from core.db import Base, Database
from core.errors import Kind, Problem

if TYPE_CHECKING:
    from hsm.token import Token

KEK_LABEL = "vault/kek"


class VaultKey(Base):
    __tablename__ = "vault_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(10))  # "enc" | "index"
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    kek_label: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Vault:
    def __init__(self, token: Token, db: Database) -> None:
        self._token = token
        self._db = db
        self._keys: dict[int, bytes] = {}
        self._active: int | None = None
        self._index_key: bytes | None = None
        self._lock = threading.Lock()

    # -- set-up ------------------------------------------------------------------------------------

    def ensure_keys(self) -> None:
        """Create the KEK in the HSM and the first data and index keys (``eauth init``; idempotent)."""
        from hsm.keys import KeySpec

        if not self._token.has_key(KEK_LABEL):
            self._token.generate(KeySpec.parse("aes-256"), KEK_LABEL)
        with self._db.transaction() as session:
            for purpose in ("enc", "index"):
                exists = session.execute(select(VaultKey.id).where(VaultKey.purpose == purpose, VaultKey.active)).first()
                if exists is None:
                    self._add_key(session, purpose)
        with self._lock:
            self._active = None

    def _add_key(self, session: Session, purpose: str) -> VaultKey:
        kek = self._token.key(KEK_LABEL)
        raw = AESGCM.generate_key(bit_length=256)
        self._pending_raw = raw
        row = VaultKey(
            purpose=purpose,
            wrapped=kek.wrap(raw, aad=f"eauth-vault:{purpose}".encode()),  # type: ignore[union-attr]
            kek_label=KEK_LABEL,
            created_at=clock.now().astimezone(UTC).isoformat(),
            active=True,
        )
        session.add(row)
        session.flush()
        return row

    def _load(self) -> None:
        with self._lock:
            if self._active is not None and self._index_key is not None:
                return
            with self._db.read() as session:
                rows = list(session.execute(select(VaultKey)).scalars())
            if not rows:
                raise Problem(Kind.UNAVAILABLE, "vault.not_initialised", "the PII vault has no keys; run `eauth init`")
            for row in rows:
                if row.id in self._keys:
                    continue
                kek = self._token.key(row.kek_label)
                self._keys[row.id] = kek.unwrap(row.wrapped, aad=f"eauth-vault:{row.purpose}".encode())  # type: ignore[union-attr]
            enc = [r for r in rows if r.purpose == "enc" and r.active]
            idx = [r for r in rows if r.purpose == "index" and r.active]
            self._active = max(r.id for r in enc)
            self._index_key = self._keys[max(r.id for r in idx)]

    # -- use ---------------------------------------------------------------------------------------

    def encrypt(self, value: str, *, context: str) -> str:
        self._load()
        assert self._active is not None
        nonce = os.urandom(12)
        sealed = AESGCM(self._keys[self._active]).encrypt(nonce, value.encode(), context.encode())
        return f"v1.{self._active}.{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, blob: str, *, context: str) -> str:
        try:
            version, key_id_text, payload = blob.split(".", 2)
            key_id = int(key_id_text)
        except ValueError as exc:
            raise Problem(Kind.INTERNAL, "vault.corrupt", "an encrypted field is corrupt") from exc
        if version != "v1":
            raise Problem(Kind.INTERNAL, "vault.corrupt", "unknown encrypted field version")
        self._load()
        if key_id not in self._keys:
            self._active = None
            self._load()
        raw = base64.b64decode(payload)
        try:
            return AESGCM(self._keys[key_id]).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, KeyError) as exc:
            raise Problem(Kind.INTERNAL, "vault.corrupt", "an encrypted field failed authentication") from exc

    def blind_index(self, value: str, *, context: str) -> str:
        self._load()
        assert self._index_key is not None
        return hmac.new(self._index_key, f"{context}\x00{value}".encode(), hashlib.sha256).hexdigest()

    def key_id_of(self, blob: str) -> int:
        return int(blob.split(".", 2)[1])

    @property
    def active_key_id(self) -> int:
        self._load()
        assert self._active is not None
        return self._active

    def rotate(self, session: Session) -> int:
        """Make a new data key active. Old keys stay (decrypt-only) until rows are re-encrypted."""
        session.execute(update(VaultKey).where(VaultKey.purpose == "enc").values(active=False))
        row = self._add_key(session, "enc")
        self._load()
        with self._lock:
            self._keys[row.id] = self._pending_raw
            self._active = row.id

        def _forget(*_args: object) -> None:  # rotation rolled back: the new key never existed
            with self._lock:
                self._keys.pop(row.id, None)
                self._active = None

        event.listen(session, "after_rollback", _forget, once=True)
        return row.id
