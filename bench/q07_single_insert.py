"""Q7: single-row INSERT statements per second, durable.

``INSERT INTO bench.t (id, cat, amount, note) VALUES ($1, $2, $3, $4)`` through ``db.execute``,
one statement per row, on a real data directory with the default durability: each statement
commits (and fsyncs) before it returns. The baseline is stdlib sqlite3 in a temp file (WAL,
synchronous=FULL) with one ``INSERT`` and one commit per row. Both run for the same number of
rows (or until 10 s pass).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.common import (
    Config,
    Row,
    create_table,
    engine,
    fmt_ns,
    fmt_rate,
    profile,
    ratio,
    sample,
    sqlite_connect,
    temp_dir,
)

QUESTION = "single-row INSERT statements/s (durable) vs SQLite one commit per row"
ROWS = ("q07.insert_per_s",)
TARGET = 5_000.0


def _inserter(db: Any) -> Callable[[], object]:
    """One single-row INSERT statement per call, with a fresh key each time."""
    table = create_table(db, "t")
    sql = f"INSERT INTO {table} (id, cat, amount, note) VALUES ($1, $2, $3, $4)"
    counter = iter(range(10**9))

    def insert_one() -> object:
        i = next(counter)
        return db.execute(sql, user="u1", params=[i, f"c{i % 10}", i / 10, "note"])

    return insert_one


def run(cfg: Config) -> list[Row]:
    n = cfg.size(3_000, 3)
    with temp_dir("q07") as d:
        with engine(d / "data") as db:
            ours = _inserter(db)
            a = sample(ours, n=n, warmup=cfg.warmup, max_seconds=10)
            rate = 1e9 / a.mean
            met = rate >= TARGET
            profile(cfg, "q07_single_insert", ours, cfg.size(300, 1))
        # The same statements with durability='off' (no fsync): the engine's CPU cost alone.
        with engine(d / "nosync", durability="off") as db:
            c = sample(_inserter(db), n=cfg.size(1_000, 1), warmup=cfg.warmup, max_seconds=5)
        conn = sqlite_connect(d / "base.sqlite")
        ids = iter(range(10**9))

        def theirs() -> None:
            i = next(ids)
            conn.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (i, f"c{i % 10}", i / 10, "note"))

        b = sample(theirs, n=n, warmup=cfg.warmup, max_seconds=10)
        conn.close()
    base = 1e9 / b.mean
    return [Row("q07.insert_per_s", "single-row INSERT statements, durable",
                fmt_rate(rate, "stmts/s"), f"SQLite {fmt_rate(base, 'commits/s')}",
                ratio(rate, base), ">= 5,000/s", met, value=rate, unit="stmts/s",
                baseline_value=base,
                note=f"engine {a.summary()} (mean {fmt_ns(a.mean)}); SQLite {b.summary()}; "
                     f"engine with durability='off': {fmt_rate(1e9 / c.mean, 'stmts/s')} "
                     f"(p50 {fmt_ns(c.p50)})",
                extra={"p50_ns": a.p50, "p99_ns": a.p99, "baseline_p50_ns": b.p50,
                       "nosync_per_s": 1e9 / c.mean})]
