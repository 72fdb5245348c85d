"""Run the benchmarks: ``python -m bench [--tiny] [--only q03,q05] [--profile] [--json PATH]``.

Prints one table (figure, baseline, ratio, target, met?) and writes the rows as JSON to
``bench/results/latest.json`` (``tiny.json`` with ``--tiny``). ``KALAM_BENCH_TINY=1`` is the same
as ``--tiny``. The exit status is 1 when a benchmark failed to run (a missed target is not a
failure: it is a finding).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, Config, Row

MODULES = (
    "q01_get_provider",
    "q02_provider_count",
    "q03_small_select",
    "q04_many_users",
    "q05_point_lookup",
    "q06_bulk_insert",
    "q07_single_insert",
    "q08_flush_parquet",
    "q09_group_by",
    "q10_magic_overhead",
    "q11_live",
    "q12_vector_search",
    "q13_serve",
    "q14_pruned_scan",
)


def run_module(name: str, cfg: Config) -> tuple[list[Row], float, str | None]:
    """Run one benchmark; a crash becomes error rows for every key it should have produced."""
    started = time.perf_counter()
    module = importlib.import_module(f"bench.{name}")
    expected: tuple[str, ...] = module.ROWS
    try:
        rows: list[Row] = module.run(cfg)
        error = None
    except Exception as exc:
        rows = []
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    got = {r.key for r in rows}
    for key in expected:
        if key not in got:
            why = error or "the benchmark produced no row for this key"
            rows.append(Row(key, key, f"error: {why}", "", None, "", None, status="error",
                            note=why))
    extra = got - set(expected)
    if extra:
        error = error or f"unexpected rows {sorted(extra)}"
    return rows, time.perf_counter() - started, error


def _met(row: Row) -> str:
    if row.status != "ok":
        return row.status
    if row.met is None:
        return "-"
    return "yes" if row.met else "NO"


def render(rows: list[Row]) -> str:
    header = ("#", "what", "figure", "baseline", "ratio", "target", "met?")
    lines = [(r.key, r.label, r.figure, r.baseline,
              "" if r.ratio is None else f"{r.ratio:.3g}x", r.target, _met(r)) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    widths = [min(w, 60) for w in widths]

    def fmt(cells: tuple[str, ...]) -> str:
        return " | ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths, strict=True))

    out = [fmt(header), "-+-".join("-" * w for w in widths)]
    out.extend(fmt(line) for line in lines)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true",
                        help="run every benchmark once at a tiny size (smoke test)")
    parser.add_argument("--only", default="",
                        help="comma-separated prefixes, e.g. q03,q05")
    parser.add_argument("--profile", action="store_true",
                        help="also write cProfile reports of the measured operations to "
                        "bench/results/profile-*.txt")
    parser.add_argument("--json", type=Path, default=None, help="where to write the rows")
    args = parser.parse_args(argv)
    tiny = args.tiny or os.environ.get("KALAM_BENCH_TINY", "") not in ("", "0")
    cfg = Config(tiny=tiny, profile=args.profile)
    wanted = [p.strip() for p in args.only.split(",") if p.strip()]
    names = [m for m in MODULES if not wanted or any(m.startswith(p) for p in wanted)]
    out_path = args.json or RESULTS_DIR / ("tiny.json" if tiny else "latest.json")

    all_rows: list[Row] = []
    timings: dict[str, float] = {}
    errors: dict[str, str] = {}
    load_before = _load()
    started = time.perf_counter()
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        rows, took, error = run_module(name, cfg)
        timings[name] = round(took, 2)
        if error:
            errors[name] = error
        all_rows.extend(rows)
        print(f"[bench] {name} done in {took:.1f} s", file=sys.stderr, flush=True)
    total = time.perf_counter() - started

    print(render(all_rows))
    load_after = _load()
    print(f"\n{len(all_rows)} rows from {len(names)} benchmarks in {total:.0f} s, "
          f"{os.cpu_count()} CPUs, load average {load_before} before and {load_after} after"
          f"{' (tiny: every size is tiny, so the figures mean nothing)' if tiny else ''}")
    for r in all_rows:
        if r.note:
            print(f"  {r.key}: {r.note}")
    report: dict[str, Any] = {
        "tiny": tiny,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(total, 1),
        "seconds_per_benchmark": timings,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "load_before": load_before,
                    "load_after": load_after},
        "versions": _versions(),
        "errors": errors,
        "expected": {n: list(importlib.import_module(f"bench.{n}").ROWS) for n in names},
        "rows": [r.as_dict() for r in all_rows],
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {out_path}")
    return 1 if errors else 0


def _load() -> str:
    """The 1-minute load average: other work on the machine makes every figure noisier."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("datafusion", "pyarrow", "pandas", "duckdb", "ipython"):
        try:
            from importlib.metadata import version

            out[dist] = version(dist)
        except Exception:
            out[dist] = "missing"
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    return out


if __name__ == "__main__":
    sys.exit(main())
