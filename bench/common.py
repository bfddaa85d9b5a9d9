"""Shared pieces of the benchmarks (``python -m bench.run_all`` runs every ``bench/bench_*.py``).

Everything here is real: a throwaway ``EAUTH_HOME`` with its own SoftHSM2 token, a PostgreSQL
database created for the run and dropped afterwards, ``eauth init`` and ``eauth serve`` run as the
operator would run them. Traffic goes to 127.0.0.1 only.

- :func:`bench_home` — the throwaway platform (``with bench_home() as bh:``); ``bh.eauth(...)``
  runs the CLI against it, ``bh.runtime()`` builds an in-process runtime on the same home (once per
  process: SoftHSM2 reads its configuration at ``C_Initialize``).
- :func:`serve` — ``eauth serve --workers N`` on ``bh.port`` until the block ends.
- :func:`percentiles`, :func:`report` — figures printed with their reference and the ratio.
- :func:`http_load` — a small asyncio HTTP/1.1 client for request sets ``ab`` cannot send (a
  different body per request, or a fixed request rate); :func:`ab` runs Apache Bench and parses it.

Each benchmark module runs in its own process (``run_all`` starts them one by one) and must stop by
itself. ``BENCH_QUICK=1`` asks modules for a smaller run (used while developing, never for the
figures in docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Byte-code caches outside the working tree: with PYTHONDONTWRITEBYTECODE every spawned worker and
# `eauth serve` process would recompile the whole code base at start (seconds on a busy machine).
PYCACHE = Path(tempfile.gettempdir()) / "eauth-bench-pycache"
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))
sys.dont_write_bytecode = False
sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"]

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
EAUTH = str(VENV_BIN / "eauth")
PG_ADMIN_URL = os.environ.get("EAUTH_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


def scale(full: int, quick: int) -> int:
    """``full`` for a real run, ``quick`` under ``BENCH_QUICK=1``."""
    return quick if QUICK else full


# -- output -------------------------------------------------------------------------------------------


def heading(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def machine() -> str:
    """One line describing where the figures were taken (cores, load when measured)."""
    load = os.getloadavg()
    return f"{platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()} · load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def report(label: str, value: float, unit: str, *, reference: float | None = None, ref_label: str = "", note: str = "") -> str:
    """Print (and return) ``label: value unit  (= ratio × reference)``."""
    line = f"{label:<44} {value:>11,.1f} {unit}"
    if reference:
        line += f"   = {value / reference:.2f}× {ref_label} ({reference:,.1f} {unit})"
    if note:
        line += f"   [{note}]"
    print(line, flush=True)
    return line


def percentiles(values: Sequence[float], ps: Sequence[float] = (50, 90, 99)) -> dict[float, float]:
    """Nearest-rank percentiles of ``values`` (same unit in and out); empty input gives NaN."""
    data = sorted(values)
    if not data:
        return {p: float("nan") for p in ps}
    out = {}
    for p in ps:
        rank = max(1, min(len(data), int(-(-p * len(data) // 100))))  # ceil(p/100 · n)
        out[p] = data[rank - 1]
    return out


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB: ``VmHWM`` of its own address space.
    (``ru_maxrss`` would not do in a spawned worker: Linux carries it across fork + exec, so it
    starts at the parent's size.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- ports, processes ---------------------------------------------------------------------------------


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds so far of a process and its descendants (server workers, -multi
    children); 0 for a process that is gone. The other load on the machine does not inflate it."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        pass
    return total


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port, never one handed out before in this process (the kernel may return the
    same ephemeral port to two consecutive probes)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_for_port(port: int, *, timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextlib.contextmanager
def process_group(args: Sequence[str], *, own_group: bool = False, **kwargs: Any) -> Iterator[subprocess.Popen]:
    """A child in its own process group, ended (SIGTERM, then SIGKILL) with its children when the
    block leaves — so no server outlives a benchmark. ``own_group``: the program makes its own
    group (``openssl ocsp -multi`` calls ``setpgid(0, 0)``, which fails in a session leader)."""
    proc = subprocess.Popen(list(args), start_new_session=not own_group, **kwargs)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


# -- the throwaway platform -----------------------------------------------------------------------------


@dataclass
class BenchHome:
    home: Path
    db_url: str
    port: int
    env: dict[str, str]
    _rt: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def eauth(self, *args: str, input: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([EAUTH, *args], env=self.env, input=input, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"eauth {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return done

    def runtime(self) -> Any:
        """An in-process runtime on this home (built once; closed when the home is torn down)."""
        if self._rt is None:
            for key in [k for k in os.environ if k.startswith("EAUTH_")]:
                os.environ.pop(key)
            os.environ.update({k: v for k, v in self.env.items() if k.startswith("EAUTH_")})
            from core.settings import load_settings
            from eauth.runtime import build_runtime

            self._rt = build_runtime(load_settings())
        return self._rt


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


@contextlib.contextmanager
def bench_home(*, init: bool = True, **settings: str) -> Iterator[BenchHome]:
    """A fresh ``EAUTH_HOME`` (SoftHSM2 token inside) and PostgreSQL database, initialised with
    ``eauth init`` unless ``init=False``; both removed afterwards. ``settings``: extra ``EAUTH_*``
    values (``rate_limits="…"``)."""
    tmp = Path(tempfile.mkdtemp(prefix="eauth-bench-"))
    name = f"eauth_bench_{os.getpid()}_{secrets.token_hex(4)}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    port = free_port()
    db_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EAUTH_", "SOFTHSM2_CONF"))}
    env.update(
        {
            "EAUTH_HOME": str(tmp / "home"),
            "EAUTH_DATABASE_URL": db_url,
            "EAUTH_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "EAUTH_LOG_FORMAT": "text",
            "EAUTH_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update({f"EAUTH_{k.upper()}": v for k, v in settings.items()})
    bh = BenchHome(tmp / "home", db_url, port, env)
    try:
        if init:
            bh.eauth("init")
        yield bh
    finally:
        if bh._rt is not None:
            with contextlib.suppress(Exception):
                bh._rt.close()
        with contextlib.suppress(Exception):
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def serve(bh: BenchHome, *, workers: int = 2, only: str = "") -> Iterator[subprocess.Popen]:
    """``eauth serve --workers N [--only …]`` on ``bh.port``; waits until /health answers."""
    args = [EAUTH, "serve", "--host", "127.0.0.1", "--port", str(bh.port), "--workers", str(workers)]
    if only:
        args += ["--only", only]
    log = open(bh.home / f"serve-{bh.port}.log", "ab")  # noqa: SIM115 - closed below
    with process_group(args, env=bh.env, stdout=log, stderr=subprocess.STDOUT) as proc:
        try:
            wait_for_port(bh.port, proc=proc)
            _wait_healthy(bh, proc)
            yield proc
        finally:
            log.close()


def _wait_healthy(bh: BenchHome, proc: subprocess.Popen, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"eauth serve exited with {proc.returncode}; see {bh.home}/serve-{bh.port}.log")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(bh.url + "/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("eauth serve did not become healthy")


def warm_up_workers(url: str, *, rounds: int = 50) -> None:
    """A few requests so every worker process has imported and connected before the clock starts."""
    import httpx

    with httpx.Client(timeout=10) as client:
        for _ in range(rounds):
            client.get(url + "/health", headers={"Connection": "close"})


# -- load generation ---------------------------------------------------------------------------------


REQUEST_TIMEOUT = 10.0  # seconds; a request without an answer by then counts as an error


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]
    errors: int
    cpu_seconds: float = 0.0  # the load generator's own CPU time (user + system, all its processes)
    processes: int = 1

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_request_us(self) -> float:
        return self.cpu_seconds / self.requests * 1e6 if self.requests else 0.0

    def pct(self, p: float) -> float:
        return percentiles(self.latencies_ms, (p,))[p]


def http_request(method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None, keep_alive: bool = True) -> bytes:
    """The bytes of one HTTP/1.1 request, built once before the clock starts."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)")
_CONNECTION_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close\b")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server closes) of one response. The two headers that matter are found by
    compiled expressions over the lower-cased head rather than a Python loop over every header
    line: a little less CPU for a generator that shares the machine with the server it measures.
    (What a response's header count costs the generator was measured and is not what separates
    eAuth from ``openssl ocsp`` in bench_ocsp: docs/performance.md, OCSP responder.)"""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    status = int(head[9:12])
    m = _CONTENT_LENGTH.search(head)
    length = int(m.group(1)) if m else 0
    close = _CONNECTION_CLOSE.search(head) is not None
    body = await reader.readexactly(length) if length else b""
    return status, body, close


async def _load(port: int, requests: Sequence[bytes], concurrency: int, rate: float | None, keep_alive: bool, start_at: float | None = None) -> LoadResult:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    next_index = 0
    if start_at is not None:  # several generator processes start together (perf_counter is CLOCK_MONOTONIC: one clock for all)
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    cpu0 = _own_cpu()
    start = time.perf_counter()

    async def worker() -> None:
        nonlocal next_index, errors
        reader = writer = None
        while True:
            i = next_index
            if i >= len(requests):
                break
            next_index += 1
            if rate:  # open loop: request i is due at start + i/rate; latency counts from then
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                t0 = due
            else:
                t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(requests[i])
                status, _, close = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT)  # type: ignore[arg-type]
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append((time.perf_counter() - t0) * 1000)
                if close or not keep_alive:
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
                errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    end = time.perf_counter()
    return LoadResult(len(requests), end - start, latencies, statuses, errors, cpu_seconds=_own_cpu() - cpu0, processes=1)


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _run_load(port: int, requests: Sequence[bytes], concurrency: int, rate: float | None, keep_alive: bool, start_at: float | None = None) -> LoadResult:
    try:
        import uvloop

        return uvloop.run(_load(port, requests, concurrency, rate, keep_alive, start_at))
    except ImportError:
        return asyncio.run(_load(port, requests, concurrency, rate, keep_alive, start_at))


def _load_part(port: int, requests: Sequence[bytes], concurrency: int, keep_alive: bool, start_at: float) -> tuple[LoadResult, float]:
    result = _run_load(port, requests, concurrency, None, keep_alive, start_at)
    return result, time.perf_counter()


def http_load(
    port: int, requests: Sequence[bytes], *, concurrency: int = 8, rate: float | None = None, keep_alive: bool = True, processes: int = 1
) -> LoadResult:
    """Send ``requests`` (pre-built by :func:`http_request`) to 127.0.0.1:``port`` over
    ``concurrency`` connections. ``rate``: requests per second, open loop (latency measured from
    each request's scheduled time, so a stall is not hidden by coordinated omission).

    ``processes`` > 1 (closed loop only): the requests are dealt out to that many generator
    processes, ``concurrency`` connections shared among them, started at the same instant; the
    rate is all their answers over the time from that instant until the last one finishes. One
    Python generator process saturates one core at ≈ 55–65 µs per request with a new connection
    each time — more than the servers it measures spend — so on a 2-core machine a single
    generator measures itself, not the server (docs/performance.md, OCSP responder)."""
    if processes <= 1 or rate is not None:
        return _run_load(port, requests, concurrency, rate, keep_alive)
    import concurrent.futures
    import multiprocessing

    parts = [list(requests[i::processes]) for i in range(processes)]
    conc = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_own_cpu_ready, range(processes)))  # every process started and imported before the clock
        start_at = time.perf_counter() + 0.5
        done = [f.result() for f in [pool.submit(_load_part, port, part, max(1, c), keep_alive, start_at) for part, c in zip(parts, conc, strict=True)]]
    latencies = [x for r, _ in done for x in r.latencies_ms]
    statuses: dict[int, int] = {}
    for r, _ in done:
        for k, v in r.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    end = max(e for _, e in done)
    return LoadResult(
        len(requests), end - start_at, latencies, statuses, sum(r.errors for r, _ in done), cpu_seconds=sum(r.cpu_seconds for r, _ in done), processes=processes
    )


def _own_cpu_ready(_: int) -> float:
    time.sleep(0.2)  # so that the pool starts all its processes, not one doing every warm-up call
    return _own_cpu()


@dataclass
class AbResult:
    requests: int
    failed: int
    non_2xx: int
    rate: float
    seconds: float
    p50_ms: float
    p99_ms: float
    latencies_ms: list[float]


def ab(url: str, *, n: int, c: int, post_file: Path | None = None, content_type: str = "", headers: Sequence[str] = (), keep_alive: bool = False) -> AbResult:
    """Apache Bench (``ab`` from apache2-utils): ``n`` requests, ``c`` at a time, one connection per
    request unless ``keep_alive``. Latencies come from ``-g`` (per-request total time, ms)."""
    with tempfile.NamedTemporaryFile(suffix=".tsv") as tsv:
        args = ["ab", "-q", "-s", "10", "-n", str(n), "-c", str(c), "-g", tsv.name]
        if keep_alive:
            args.append("-k")
        if post_file is not None:
            args += ["-p", str(post_file), "-T", content_type]
        for h in headers:
            args += ["-H", h]
        args.append(url)
        done = subprocess.run(args, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"ab failed ({done.returncode}): {done.stderr.strip()}")
        out = done.stdout
        lat = []
        for line in Path(tsv.name).read_text().splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) >= 5:
                lat.append(float(cols[4]))  # ttime, ms (whole milliseconds)

    def num(pattern: str, default: float = 0.0) -> float:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else default

    pct = percentiles(lat, (50, 99))
    # "Length" failures are answers whose size differs from the first one (ECDSA signatures vary
    # by a byte or two): not errors. Connect, receive and exception failures are.
    m = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", out)
    failed = int(m.group(1)) + int(m.group(2)) + int(m.group(4)) if m else int(num(r"Failed requests:\s+(\d+)"))
    return AbResult(
        requests=int(num(r"Complete requests:\s+(\d+)")),
        failed=failed,
        non_2xx=int(num(r"Non-2xx responses:\s+(\d+)")),
        rate=num(r"Requests per second:\s+([\d.]+)"),
        seconds=num(r"Time taken for tests:\s+([\d.]+)"),
        p50_ms=pct[50],
        p99_ms=pct[99],
        latencies_ms=lat,
    )


def main_guard(run: Any) -> None:
    """``if __name__ == "__main__": main_guard(main)`` — exit status 1 on an exception, with the
    machine line printed first so every figure has its context."""
    print(machine(), flush=True)
    try:
        run()
    except KeyboardInterrupt:
        sys.exit(130)
