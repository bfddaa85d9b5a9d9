"""Where does a worker's memory go under the soak workload? A diagnostic, not a benchmark figure.

    .venv/bin/python -m bench.soak_memory                       # 240 s, snapshots every 60 s
    MEMSOAK_SECONDS=600 MEMSOAK_FRAMES=12 .venv/bin/python -m bench.soak_memory

The app runs in *this* process (one uvicorn server in a thread, the same app ``eauth serve`` builds,
on PostgreSQL) with ``tracemalloc`` on, and the soak's mixed workload (bench/bench_soak.py) drives it
from client threads. Every SNAPSHOT_EVERY seconds it prints the resident set size, the memory
Python's allocator traces, and glibc's view (``mallinfo2``: arena bytes in use vs free but kept);
at the end, the allocation sites that grew most between the first snapshot after warm-up and the
last. Reading it:

- traced memory flat, RSS growing, ``free in arenas`` growing → allocator fragmentation (many
  threads' malloc arenas), not a leak: ``MALLOC_ARENA_MAX`` bounds it;
- traced memory growing, a site at the top of the diff → a Python-level leak or an unbounded cache;
- RSS growing with neither → native memory (OpenSSL, SoftHSM2, libpq) outside both views.
"""

from __future__ import annotations

import ctypes
import gc
import os
import random
import threading
import time
import tracemalloc

from bench.bench_soak import CONCURRENCY, WEIGHTS, Workload, prepare, soak_client
from bench.common import bench_home, heading, machine

SECONDS = float(os.environ.get("MEMSOAK_SECONDS", "240"))
WARMUP = float(os.environ.get("MEMSOAK_WARMUP", "60"))
SNAPSHOT_EVERY = float(os.environ.get("MEMSOAK_EVERY", "60"))
FRAMES = int(os.environ.get("MEMSOAK_FRAMES", "8"))
TOP = int(os.environ.get("MEMSOAK_TOP", "25"))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def mallinfo() -> tuple[float, float, float] | None:
    """(bytes in use, free but held in arenas, mmapped chunks) in MiB, from glibc ``mallinfo2``."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return None
    m = libc.mallinfo2()
    return m.uordblks / 2**20, m.fordblks / 2**20, m.hblkhd / 2**20


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def line(t: float, done: int, errors: int) -> str:
    traced, peak = tracemalloc.get_traced_memory()
    m = mallinfo()
    glibc = f"  malloc in use {m[0]:.0f} free-in-arenas {m[1]:.0f} mmapped {m[2]:.0f} MiB" if m else ""
    return f"t={t:5.0f}s ops={done:6d} errors={errors}  RSS {rss_mib():.0f} MiB  traced {traced / 2**20:.1f} MiB (peak {peak / 2**20:.1f}){glibc}  gc objects {len(gc.get_objects())}"


def main() -> None:
    import uvicorn

    heading(f"Memory under the soak workload: app in-process with tracemalloc ({FRAMES} frames), {SECONDS:.0f} s, {CONCURRENCY} clients")
    print(machine())
    print(f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', '(unset: 8 x cores)')}")
    with bench_home(rate_limits="login=off,tsa=off,seal=off,verify_page=off") as bh:
        rt = bh.runtime()
        from eauth.app import create_app
        from eauth.http_protocol import HeaderDeadlineProtocol

        app = create_app(rt)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=bh.port, log_level="warning", access_log=False, timeout_keep_alive=5, http=HeaderDeadlineProtocol))
        threading.Thread(target=server.run, daemon=True).start()
        deadline = time.monotonic() + 60
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("in-process server did not start")
            time.sleep(0.1)
        fixtures = prepare(bh, bh.url)
        work = Workload(bh.url, fixtures)
        stop = threading.Event()
        done = [0]
        errors: list[str] = []
        lock = threading.Lock()
        kinds, weights = zip(*WEIGHTS.items())

        def client_loop(seed: int) -> None:
            rng = random.Random(seed)
            with soak_client(bh.url) as client:
                bearer = {"Authorization": f"Bearer {work._token(client)}"}
                while not stop.is_set():
                    kind = rng.choices(kinds, weights)[0]
                    try:
                        work.run(kind, client, rng, bearer)
                        with lock:
                            done[0] += 1
                    except Exception as exc:  # noqa: BLE001 - shown, not fatal
                        with lock:
                            errors.append(f"{kind}: {exc}"[:400])
                        print(f"  ERROR {kind}: {exc}"[:600], flush=True)

        tracemalloc.start(FRAMES)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(CONCURRENCY)]
        for t in threads:
            t.start()
        baseline = None
        next_snap = WARMUP
        while (elapsed := time.perf_counter() - t0) < SECONDS:
            time.sleep(min(5.0, max(0.1, next_snap - elapsed)))
            elapsed = time.perf_counter() - t0
            if elapsed >= next_snap:
                gc.collect()
                print("  " + line(elapsed, done[0], len(errors)), flush=True)
                if baseline is None:
                    baseline = tracemalloc.take_snapshot()
                next_snap += SNAPSHOT_EVERY
        stop.set()
        for t in threads:
            t.join(timeout=90)
        gc.collect()
        final = tracemalloc.take_snapshot()
        print("  " + line(time.perf_counter() - t0, done[0], len(errors)), flush=True)
        server.should_exit = True
        if baseline is not None:
            ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
            diff = final.filter_traces(ignore).compare_to(baseline.filter_traces(ignore), "traceback")
            print(f"\nTop {TOP} allocation sites by growth after warm-up ({WARMUP:.0f} s → end):")
            for stat in diff[:TOP]:
                print(f"  {stat.size_diff / 1024:+9.1f} KiB  {stat.count_diff:+7d} blocks  (now {stat.size / 1024:.0f} KiB)")
                for frame in stat.traceback.format()[-2 * FRAMES:]:
                    print("      " + frame)
            by_file = final.filter_traces(ignore).compare_to(baseline.filter_traces(ignore), "filename")
            print("\nBy file:")
            for stat in by_file[:15]:
                print(f"  {stat.size_diff / 1024:+9.1f} KiB  {stat.traceback[0].filename}")
        print(f"errors: {len(errors)}")
        for e in errors[:20]:
            print("  " + e)


if __name__ == "__main__":
    main()
