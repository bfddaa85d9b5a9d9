"""pytest plugin (listed in ``tests/conftest.py``): print how many hostile-input cases ran, per target,
at the end of the run — also under xdist, where the cases run in worker processes: each process
writes its tally to a directory the controller made, and the controller adds them up."""

from __future__ import annotations

import collections
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

ENV = "HOSTILE_TALLY_DIR"  # not EAUTH_*: tests/conftest.py drops those from the environment


def pytest_configure(config: Any) -> None:
    if not hasattr(config, "workerinput") and ENV not in os.environ:
        os.environ[ENV] = tempfile.mkdtemp(prefix="eauth-hostile-")  # inherited by xdist workers
        config._eauth_tally_owner = True


def pytest_sessionfinish(session: Any) -> None:
    from tests.reliability.hostile import TALLY

    directory = os.environ.get(ENV)
    if TALLY and directory and Path(directory).is_dir():
        data = {target: dict(outcomes) for target, outcomes in TALLY.items()}
        (Path(directory) / f"{os.getpid()}.json").write_text(json.dumps(data))


def pytest_terminal_summary(terminalreporter: Any, config: Any) -> None:
    if not getattr(config, "_eauth_tally_owner", False):
        return
    directory = Path(os.environ.pop(ENV))
    merged: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for path in sorted(directory.glob("*.json")):
        for target, outcomes in json.loads(path.read_text()).items():
            merged[target].update(outcomes)
    shutil.rmtree(directory, ignore_errors=True)
    if not merged:
        return
    terminalreporter.section("hostile input: cases run")
    total = 0
    for target in sorted(merged):
        outcomes = merged[target]
        count = sum(outcomes.values())
        if not target.startswith("("):  # "(…)" lines are bookkeeping (operations skipped…), not cases
            total += count
        top = ", ".join(f"{k} {v}" for k, v in outcomes.most_common(4))
        terminalreporter.write_line(f"{target:<44} {count:>6}  ({top}{', …' if len(outcomes) > 4 else ''})")
    terminalreporter.write_line(f"{'total':<44} {total:>6}")
