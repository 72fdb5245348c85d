"""`python -m bench --tiny` runs every benchmark once at a tiny size, so none of them rots.

This checks that every script runs and produces every one of its rows; it never checks the
numbers (those belong to `make bench`, on a quiet machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_benchmark_runs_and_fills_every_row(tmp_path: Path) -> None:
    scripts = sorted(p.stem for p in (ROOT / "bench").glob("q[0-9][0-9]_*.py"))
    assert len(scripts) == 14, scripts
    out = tmp_path / "tiny.json"
    env = {**os.environ, "KALAM_BENCH_TINY": "1"}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-2000:]
    report = json.loads(out.read_text())
    assert report["tiny"] is True
    assert report["errors"] == {}
    assert sorted(report["expected"]) == scripts, "every script must be registered in MODULES"
    expected = [key for name in scripts for key in report["expected"][name]]
    rows = {row["key"]: row for row in report["rows"]}
    assert sorted(rows) == sorted(expected), "every benchmark must produce each of its rows"
    for key, row in rows.items():
        # "n/a" is allowed (a feature not in this build, said clearly); a crash is not.
        assert row["status"] in ("ok", "n/a"), (key, row["figure"])
        assert row["figure"] and row["target"] is not None, key
        if row["status"] == "ok":
            assert row["baseline"], key
    for key in expected:  # the printed table has a line per row
        assert key in proc.stdout, key
    assert took < 60, f"the tiny run took {took:.0f} s; keep it under 60 s"
