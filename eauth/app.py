"""The app factory: one FastAPI app mounting every package's router."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from types import ModuleType

from fastapi import FastAPI
from fastapi.responses import JSONResponse

import admin.web
import auth_service.web
import ca.web
import signing.web
from core import logs, metrics, traffic
from core.db import require_migrated
from core.errors import Problem
from core.runtime import Runtime
from core.web import guard_slow_bodies, install
from eauth import security_headers
from eauth.runtime import build_runtime

log = logging.getLogger("eauth.app")

# (package web module, component name for `eauth serve --only`)
COMPONENTS: list[tuple[ModuleType, str]] = [
    (ca.web, "ca"),
    (auth_service.web, "sso"),
    (signing.web, "signing"),
    (admin.web, "admin"),
]


def create_app(rt: Runtime | None = None) -> FastAPI:
    owns_runtime = rt is None
    if rt is None:
        rt = build_runtime()
    logs.configure(rt.settings.log_level, rt.settings.log_format)
    require_migrated(rt.db)
    only = set(rt.settings.serve_only)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        for module, _name in COMPONENTS:  # stop per-process threads a package started in setup()
            teardown = getattr(module, "teardown", None)
            if teardown is not None:
                teardown(rt)
        traffic.stop(rt)  # writes the last daily traffic counts
        if owns_runtime:
            rt.close()

    app = FastAPI(
        title="eAuth",
        version="0.1.0",
        description="Unified electronic authentication and digital certificate platform",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    install(app, max_body=rt.settings.max_request_bytes)
    security_headers.install(app, https=rt.settings.public_url.startswith("https://"))
    metrics.install(app, rt)

    @app.get("/health", tags=["platform"])
    def health() -> JSONResponse:
        checks: dict[str, object] = {}
        ok = True
        try:
            rt.db.ping()
            checks["database"] = {"status": "ok", "dialect": rt.db.dialect}
        except Problem as exc:
            ok = False
            checks["database"] = {"status": "error", "code": exc.code}
        try:
            checks["hsm"] = {"status": "ok", **rt.token.ping()}
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            ok = False
            checks["hsm"] = {"status": "error", "code": getattr(getattr(exc, "kind", None), "value", "error")}
        return JSONResponse({"status": "ok" if ok else "error", "checks": checks}, status_code=200 if ok else 503)

    for module, name in COMPONENTS:
        if only and not _wanted(name, only):
            continue
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(rt)
        router_for = getattr(module, "router_for", None)  # a package may narrow its routes (--only)
        app.include_router(router_for(rt) if router_for is not None else module.router)
        install_layers = getattr(module, "install", None)  # ASGI layers in front of routing
        if install_layers is not None:
            install_layers(app, rt)
    _count_traffic(rt)
    guard_slow_bodies(app, initial=rt.settings.request_body_timeout)  # last: outermost, covers the fast paths
    return app


def _count_traffic(rt: Runtime) -> None:
    """Daily OCSP/verification counts for the dashboard, written by one thread per process
    (``core.traffic``). The OCSP responder keeps its own running total (no lock on its path)."""
    from ca import ocsp

    traffic.watch(rt, "ocsp", lambda: getattr(rt.extensions.get(ocsp.EXTENSION_KEY), "answered", 0))
    traffic.start(rt)


def _wanted(component: str, only: set[str]) -> bool:
    # `--only ocsp,crl` names sub-components of the CA; the CA router serves them.
    aliases = {"ca": {"ca", "ocsp", "crl", "aia"}, "sso": {"sso", "oidc"}, "signing": {"signing", "tsa", "verify"}, "admin": {"admin"}}
    return bool(aliases.get(component, {component}) & only)


def factory() -> FastAPI:
    """Entry point for ``uvicorn --factory eauth.app:factory`` (one runtime per worker process)."""
    return create_app()
