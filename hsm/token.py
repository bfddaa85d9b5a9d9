"""A PKCS#11 token: loading the module, logging in, a pool of sessions, key generation and look-up.

One PKCS#11 session performs one operation at a time (PKCS#11 v2.40 §5.1: a session has at most one
active operation of each kind), so operations borrow a session from a pool and give it back. The
login state is per application, not per session: the first session logs in, the rest inherit it.

python-pkcs11 initialises modules with ``C_Initialize(NULL)``, which tells the module the
application will *not* call it from several threads at once (PKCS#11 v2.40 §5.4), and since 0.9 it
releases the GIL during calls: SoftHSM2 then crashes under concurrent threads. So every borrowed
session also holds a per-module re-entrant lock. Throughput comes from processes (one token
connection each), as ARCHITECTURE.md measures: threads never added HSM throughput here anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from hsm.errors import HsmError, HsmErrorKind
from hsm.keys import (
    HsmEcPrivateKey,
    HsmRsaPrivateKey,
    HsmSecretKey,
    KeySpec,
    translate_pkcs11_error,
)

SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)

_CURVE_OIDS = {"P-256": "secp256r1", "P-384": "secp384r1"}

# Loaded modules are process-wide in python-pkcs11 (C_Initialize once per process).
_LIBS: dict[str, Any] = {}
_LIBS_LOCK = threading.Lock()
_MODULE_LOCKS: dict[str, threading.RLock] = {}


def default_softhsm_module() -> str | None:
    for path in SOFTHSM_MODULE_CANDIDATES:
        if os.path.exists(path):
            return path
    return None


@dataclass(frozen=True)
class TokenConfig:
    module: str
    label: str
    pin: str
    pool_size: int = 4

    def __repr__(self) -> str:  # the PIN never appears in logs or tracebacks
        return f"TokenConfig(module={self.module!r}, label={self.label!r}, pin=***)"


def ensure_softhsm_token(directory: Path, *, label: str, pin: str, so_pin: str) -> Path:
    """Create (once) a SoftHSM2 configuration and an initialised token under ``directory``.

    Returns the configuration path, which must be exported as ``SOFTHSM2_CONF`` before the module is
    loaded in this process. Idempotent: an existing token with ``label`` is left alone.
    """
    directory = Path(directory)
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    conf = directory / "softhsm2.conf"
    wanted = f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
    if not conf.exists() or conf.read_text() != wanted:
        conf.write_text(wanted)
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    shown = subprocess.run(["softhsm2-util", "--show-slots"], env=env, capture_output=True, text=True, check=False)
    labels = {line.split(":", 1)[1].strip() for line in shown.stdout.splitlines() if line.strip().startswith("Label:")}
    if label in labels:
        return conf
    done = subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise HsmError(HsmErrorKind.DEVICE_ERROR, f"softhsm2-util could not initialise the token: {done.stderr.strip()}")
    return conf


class Token:
    """A logged-in token with a bounded pool of sessions.

    ``fault_hook`` (tests, drills) is called with the operation name before every token call; it may
    raise :class:`HsmError` to simulate CKR_DEVICE_ERROR, a removed token, etc.
    ``observer`` (metrics) is called after every observed call with ``(operation, seconds, ok)``;
    it lets ``core.metrics`` time the token without this package importing anything above it.
    """

    def __init__(self, config: TokenConfig) -> None:
        self.config = config
        self.fault_hook: Callable[[str], None] | None = None
        self.observer: Callable[[str, float, bool], None] | None = None
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._created = 0
        self._create_lock = threading.Lock()
        self._logged_in = False
        self._key_cache: dict[str, Any] = {}
        self._handles: dict[int, dict[tuple[str, Any], Any]] = {}
        self._closed = False
        with translate_pkcs11_error("open token"):
            self._lib = _load_module(config.module)
            self._module_lock = _MODULE_LOCKS[config.module]
            try:
                self._token = self._lib.get_token(token_label=config.label)
            except pkcs11.NoSuchToken as exc:
                raise HsmError(HsmErrorKind.TOKEN_MISSING, f"no PKCS#11 token labelled {config.label!r}") from exc
            # Log in now so a wrong PIN is reported at start-up, not at the first signature.
            with self.session():
                pass

    # -- sessions --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """Borrow a session for one operation. Broken sessions are dropped, not returned to the pool."""
        if self._closed:
            raise HsmError(HsmErrorKind.TOKEN_MISSING, "token is closed")
        with self._module_lock:
            with self._borrowed() as sess:
                yield sess

    @contextlib.contextmanager
    def _borrowed(self) -> Iterator[Any]:
        sess = self._acquire()
        healthy = True
        try:
            yield sess
        except pkcs11.exceptions.PKCS11Error as exc:
            healthy = not isinstance(
                exc,
                (pkcs11.exceptions.SessionClosed, pkcs11.exceptions.SessionHandleInvalid, pkcs11.exceptions.DeviceRemoved, pkcs11.exceptions.TokenNotPresent, pkcs11.exceptions.DeviceError),
            )
            raise
        finally:
            if healthy:
                self._pool.put(sess)
            else:
                self._handles.pop(id(sess), None)
                with self._create_lock:
                    self._created -= 1
                with contextlib.suppress(Exception):
                    sess.close()

    def _acquire(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._create_lock:
            if self._created < self.config.pool_size:
                self._created += 1
                try:
                    return self._open_session()
                except BaseException:
                    self._created -= 1
                    raise
        return self._pool.get()

    def _open_session(self) -> Any:
        with translate_pkcs11_error("login"):
            if not self._logged_in:
                try:
                    sess = self._token.open(rw=True, user_pin=self.config.pin)
                except pkcs11.exceptions.UserAlreadyLoggedIn:
                    sess = self._token.open(rw=True)
                self._logged_in = True
                return sess
            return self._token.open(rw=True)

    def object_in(self, sess: Any, label: str, object_class: Any) -> Any:
        """The object handle for ``label`` in ``sess``, found once per session (C_FindObjects is
        slower than the signature itself on SoftHSM2)."""
        cache = self._handles.setdefault(id(sess), {})
        key = (label, object_class)
        obj = cache.get(key)
        if obj is None:
            obj = sess.get_key(object_class=object_class, label=label)
            cache[key] = obj
        return obj

    def check_fault(self, operation: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(operation)

    @contextlib.contextmanager
    def operation(self, name: str) -> Iterator[None]:
        """One token call: the fault hook first, then the call, timed for ``observer`` (the time
        includes waiting for the module lock: that is the latency callers see)."""
        observer = self.observer
        start = time.perf_counter()
        ok = False
        try:
            self.check_fault(name)
            yield
            ok = True
        finally:
            if observer is not None:
                with contextlib.suppress(Exception):
                    observer(name, time.perf_counter() - start, ok)

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                sess = self._pool.get_nowait()
            except queue.Empty:
                break
            with contextlib.suppress(Exception):
                sess.close()
        self._created = 0
        self._logged_in = False
        self._key_cache.clear()
        self._handles.clear()

    def ping(self) -> dict[str, Any]:
        """Reachability check for /health: a round trip to the token."""
        with self.operation("ping"), translate_pkcs11_error("ping"), self.session() as sess:
            sess.generate_random(64)
        return {"label": self.config.label, "module": os.path.basename(self.config.module)}

    # -- keys ------------------------------------------------------------------------------------

    def generate(self, spec: KeySpec, label: str) -> HsmEcPrivateKey | HsmRsaPrivateKey | HsmSecretKey:
        """Generate a key inside the token: sensitive, never extractable, private, labelled ``label``."""
        if self.has_key(label):
            raise HsmError(HsmErrorKind.KEY_EXISTS, f"a key labelled {label!r} already exists", label=label)
        key_id = hashlib.sha256(label.encode()).digest()[:16]
        private_template = {
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.PRIVATE: True,
            Attribute.TOKEN: True,
            Attribute.MODIFIABLE: False,
        }
        with self.operation("generate"), translate_pkcs11_error(f"generate {label}", label=label), self.session() as sess:
            if spec.algorithm == "EC":
                params = sess.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE_OIDS[spec.curve])},
                    local=True,
                )
                params.generate_keypair(
                    store=True,
                    label=label,
                    id=key_id,
                    private_template=private_template | {Attribute.SIGN: True, Attribute.DERIVE: False},
                    public_template={Attribute.VERIFY: True, Attribute.TOKEN: True},
                )
            elif spec.algorithm == "RSA":
                sess.generate_keypair(
                    KeyType.RSA,
                    spec.size,
                    store=True,
                    label=label,
                    id=key_id,
                    private_template=private_template | {Attribute.SIGN: True, Attribute.DECRYPT: False, Attribute.UNWRAP: False},
                    public_template={Attribute.VERIFY: True, Attribute.TOKEN: True, Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01"},
                )
            elif spec.algorithm == "AES":
                sess.generate_key(
                    KeyType.AES,
                    spec.size,
                    store=True,
                    label=label,
                    id=key_id,
                    template=private_template
                    | {Attribute.ENCRYPT: True, Attribute.DECRYPT: True, Attribute.WRAP: True, Attribute.UNWRAP: True, Attribute.SIGN: False},
                )
            else:  # KeySpec validates, so this is a programming error
                raise HsmError(HsmErrorKind.UNSUPPORTED, f"unsupported key algorithm {spec.algorithm}")
        return self.key(label)

    def has_key(self, label: str) -> bool:
        with translate_pkcs11_error("find key", label=label), self.session() as sess:
            return any(True for _ in sess.get_objects({Attribute.LABEL: label}))

    def labels(self, prefix: str = "") -> list[str]:
        """Labels of the private and secret keys in the token, optionally under a prefix (``oidc/``)."""
        found: set[str] = set()
        with translate_pkcs11_error("list keys"), self.session() as sess:
            for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
                for obj in sess.get_objects({Attribute.CLASS: cls}):
                    label = obj[Attribute.LABEL]
                    if label.startswith(prefix):
                        found.add(label)
        return sorted(found)

    def key(self, label: str) -> HsmEcPrivateKey | HsmRsaPrivateKey | HsmSecretKey:
        """The key labelled ``label``: an object the rest of the platform can sign or wrap with."""
        cached = self._key_cache.get(label)
        if cached is not None:
            return cached
        with self.operation("find"), translate_pkcs11_error(f"find key {label}", label=label), self.session() as sess:
            objects = list(sess.get_objects({Attribute.LABEL: label}))
            private = next((o for o in objects if o.object_class == ObjectClass.PRIVATE_KEY), None)
            secret = next((o for o in objects if o.object_class == ObjectClass.SECRET_KEY), None)
            public = next((o for o in objects if o.object_class == ObjectClass.PUBLIC_KEY), None)
            if secret is not None:
                key: Any = HsmSecretKey(self, label, secret[Attribute.VALUE_LEN] * 8)
            elif private is not None and public is not None:
                if private.key_type == KeyType.EC:
                    key = HsmEcPrivateKey(self, label, public[Attribute.EC_PARAMS], public[Attribute.EC_POINT])
                elif private.key_type == KeyType.RSA:
                    key = HsmRsaPrivateKey(self, label, public[Attribute.MODULUS], public[Attribute.PUBLIC_EXPONENT])
                else:
                    raise HsmError(HsmErrorKind.UNSUPPORTED, f"key {label!r} has an unsupported type", label=label)
            else:
                raise HsmError(HsmErrorKind.KEY_MISSING, f"no key labelled {label!r} in the token", label=label)
        self._key_cache[label] = key
        return key

    def attributes(self, label: str) -> dict[str, bool]:
        """Security attributes of the private/secret key, for ceremonies and tests."""
        with translate_pkcs11_error(f"read attributes {label}", label=label), self.session() as sess:
            for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
                for obj in sess.get_objects({Attribute.LABEL: label, Attribute.CLASS: cls}):
                    return {
                        "sensitive": bool(obj[Attribute.SENSITIVE]),
                        "extractable": bool(obj[Attribute.EXTRACTABLE]),
                        "always_sensitive": bool(obj[Attribute.ALWAYS_SENSITIVE]),
                        "never_extractable": bool(obj[Attribute.NEVER_EXTRACTABLE]),
                        "local": bool(obj[Attribute.LOCAL]),
                    }
        raise HsmError(HsmErrorKind.KEY_MISSING, f"no key labelled {label!r} in the token", label=label)

    def try_export(self, label: str) -> bytes:
        """Attempt to read or wrap out a key's private value. Always refused for our keys.

        Exists so tests and the key ceremony can *prove* non-extractability against the real token.
        """
        with translate_pkcs11_error(f"export {label}", label=label), self.session() as sess:
            target = None
            for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
                target = next(iter(sess.get_objects({Attribute.LABEL: label, Attribute.CLASS: cls})), target)
            if target is None:
                raise HsmError(HsmErrorKind.KEY_MISSING, f"no key labelled {label!r}", label=label)
            attr = Attribute.VALUE if target.object_class == ObjectClass.SECRET_KEY else (
                Attribute.PRIVATE_EXPONENT if target.key_type == KeyType.RSA else Attribute.VALUE
            )
            try:
                return target[attr]
            except pkcs11.exceptions.AttributeSensitive:
                pass
            wrapper = sess.generate_key(KeyType.AES, 256, store=False, template={Attribute.WRAP: True, Attribute.EXTRACTABLE: True})
            mech = Mechanism.AES_KEY_WRAP_PAD if target.object_class == ObjectClass.PRIVATE_KEY else Mechanism.AES_KEY_WRAP
            return wrapper.wrap_key(target, mechanism=mech)

    def wipe(self) -> int:
        """Destroy every object in the token (test fixtures recycling a token; decommissioning)."""
        with translate_pkcs11_error("wipe token"), self.session() as sess:
            objects = list(sess.get_objects({}))
            for obj in objects:
                obj.destroy()
        self._key_cache.clear()
        self._handles.clear()
        return len(objects)

    def delete(self, label: str) -> None:
        """Destroy every object labelled ``label`` (tests and failed ceremonies only)."""
        with translate_pkcs11_error(f"delete {label}", label=label), self.session() as sess:
            for obj in list(sess.get_objects({Attribute.LABEL: label})):
                obj.destroy()
        self._key_cache.pop(label, None)
        for cache in self._handles.values():
            for key in [k for k in cache if k[0] == label]:
                cache.pop(key, None)


def _load_module(path: str) -> Any:
    with _LIBS_LOCK:
        lib = _LIBS.get(path)
        if lib is None:
            if not os.path.exists(path):
                raise HsmError(HsmErrorKind.MODULE_MISSING, f"PKCS#11 module not found: {path}")
            lib = pkcs11.lib(path)
            _LIBS[path] = lib
            _MODULE_LOCKS[path] = threading.RLock()
        return lib


def reload_module(path: str) -> None:
    """Finalize and re-initialise a module (after a token was re-inserted or re-created)."""
    with _LIBS_LOCK:
        lib = _LIBS.get(path)
        if lib is not None:
            with contextlib.suppress(Exception):
                lib.reinitialize()
