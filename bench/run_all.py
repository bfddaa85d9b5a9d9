"""Run every benchmark: ``python -m bench.run_all [NAME …]`` (``make bench``).

Discovers ``bench/bench_*.py`` (no module is named here, so a new benchmark only has to exist) and
runs each in its own process, one after another — benchmarks share the two cores and would
distort each other. ``NAME`` selects modules by substring (``ocsp``, ``issuance``). Output is
streamed as it comes; the exit status is non-zero if any benchmark failed. ``BENCH_QUICK=1`` is
passed through for a smaller development run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import machine

HERE = Path(__file__).resolve().parent


def discover(selected: list[str]) -> list[str]:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if selected:
        names = [n for n in names if any(s in n for s in selected)]
    return names


def main(argv: list[str]) -> int:
    names = discover(argv)
    if not names:
        print("no benchmark matches", argv, file=sys.stderr)
        return 2
    print(f"benchmarks: {', '.join(names)}", flush=True)
    print(machine(), flush=True)
    failed = []
    for name in names:
        print(f"\n######## {name} ({time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())})", flush=True)
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=HERE.parent, env=os.environ.copy())
        status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        print(f"######## {name}: {status} in {time.monotonic() - t0:.0f} s", flush=True)
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
