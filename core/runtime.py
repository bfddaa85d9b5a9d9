"""The runtime a process works with: settings, database, token, vault, audit log.

Built once by the composition root (``eauth.runtime.build_runtime``) and handed to service
functions; the web app keeps it on ``app.state.runtime``. Packages above ``core`` that need shared
per-process state (an OCSP cache, a timestamper) keep it in ``extensions`` under their own name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.audit import AuditLog
from core.db import Database
from core.security import TokenVerifier
from core.settings import Settings
from core.vault import Vault

if TYPE_CHECKING:
    from hsm.token import Token


@dataclass
class Runtime:
    settings: Settings
    db: Database
    token: Token
    vault: Vault
    audit: AuditLog
    token_verifier: TokenVerifier | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        try:
            self.audit.checkpoint(self.db)
        finally:
            self.db.dispose()
            self.token.close()
