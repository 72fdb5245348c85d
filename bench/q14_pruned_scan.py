"""Q14: a filtered SELECT over 20 cold Parquet segments, with and without segment pruning.

One user's rows are written and flushed 20 times in batches of 10,000 (ids 0..199,999, so
each segment covers one id range; the shape of Q8). Every sample opens the data directory anew,
so the segments are cold (on disk, not yet read by the engine; the OS page cache is warm), then
times the first statement:

    SELECT id, cat, amount FROM bench.t WHERE id BETWEEN $1 AND $1 + 99

- ours: the WHERE's key bounds reach ``provider.read``, which opens only the segment(s) whose
  manifest id range can match;
- baseline, same run: the same statement with the bounds not pushed (``runner.push_filters =
  False``), which reads and merges all 20 segments;
- for context: raw DataFusion over the same 20 Parquet files (its own row-group statistics
  pruning, no version merge, no per-user partition), registered once.

Opening the directory and its first statement (``SELECT 1``, which builds the pooled DataFusion
session) are not timed. The figure also reports how many segment files each way
opened (``SegmentFiles.reads``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from bench.common import (
    NS,
    Config,
    Row,
    Timing,
    create_table,
    engine,
    fmt_ns,
    make_rows,
    ratio,
    temp_dir,
    time_once_ns,
)

QUESTION = "filtered SELECT over 20 cold segments: pruned vs every segment read"
ROWS = ("q14.pruned_p50",)
TARGET = 0.25  # at most a quarter of the unpruned read
SQL = "SELECT id, cat, amount FROM {t} WHERE id BETWEEN $1 AND $2"


def _build(data: Path, rounds: int, per_round: int, who: str) -> str:
    with engine(data) as db:
        table = create_table(db, "t")
        for r in range(rounds):
            db.insert_arrow(table, make_rows(per_round, start=r * per_round), user=who)
            db.execute(f"STORAGE FLUSH TABLE {table}")
    return table


def _cold_query(data: Path, sql: str, params: list[int], who: str,
                push: bool) -> tuple[int, int, int]:
    """(ns, rows, segment files opened) of the first statement on a freshly opened engine."""
    import kalam_engine

    db: Any = kalam_engine.connect(data)
    try:
        db.runner.push_filters = push
        db.execute("SELECT 1", user=who)  # the engine's first statement builds its session
        db.storage.files.reads.clear()
        out: list[Any] = []
        ns = time_once_ns(lambda: out.append(db.execute(sql, user=who, params=params)))
        return ns, out[0].to_arrow().num_rows, sum(db.storage.files.reads.values())
    finally:
        db.close()


def run(cfg: Config) -> list[Row]:
    from datafusion import SessionContext

    rounds, per_round = cfg.size(20, 3), cfg.size(10_000, 100)
    n = cfg.size(40, 1)
    who = "u1"
    rng = random.Random(14)
    with temp_dir("q14") as d:
        data = d / "data"
        table = _build(data, rounds, per_round, who)
        files = sorted(str(p) for p in (data / "storage").rglob("*.parquet"))
        sql = SQL.format(t=table)
        df = SessionContext()
        df.register_parquet("t", str(data / "storage" / NS / "t" / who))
        pruned: list[int] = []
        full: list[int] = []
        raw: list[int] = []
        opened = {True: 0, False: 0}
        for _ in range(n + (0 if cfg.tiny else 2)):  # the first two are warm-up
            low = rng.randrange(0, rounds * per_round - 100)
            params = [low, low + 99]
            a, rows_a, opened[True] = _cold_query(data, sql, params, who, True)
            b, rows_b, opened[False] = _cold_query(data, sql, params, who, False)
            c = time_once_ns(lambda p=params: df.sql(
                "SELECT id, cat, amount FROM t WHERE id BETWEEN $1 AND $2",
                param_values={"1": p[0], "2": p[1]}).to_arrow_table())
            assert rows_a == rows_b == 100, (rows_a, rows_b)
            pruned.append(a)
            full.append(b)
            raw.append(c)
        if not cfg.tiny:
            pruned, full, raw = pruned[2:], full[2:], raw[2:]
    a_t, b_t, c_t = Timing(tuple(pruned)), Timing(tuple(full)), Timing(tuple(raw))
    r = ratio(a_t.p50, b_t.p50)
    return [Row("q14.pruned_p50",
                f"WHERE id BETWEEN (100 rows) over {len(files)} cold segments, "
                f"{rounds * per_round:,} rows, p50",
                f"{fmt_ns(a_t.p50)} ({opened[True]} of {len(files)} files)",
                f"all segments {fmt_ns(b_t.p50)} ({opened[False]} files)", r,
                f"<= {TARGET}x unpruned", r is not None and r <= TARGET,
                value=a_t.p50, unit="ns", baseline_value=b_t.p50,
                note=f"pruned {a_t.summary()}; unpruned {b_t.summary()}; raw DataFusion over "
                     f"the same Parquet files {c_t.summary()} "
                     f"({ratio(a_t.p50, c_t.p50) or 0:.3g}x)",
                extra={"files": len(files), "opened_pruned": opened[True],
                       "opened_unpruned": opened[False], "datafusion_p50_ns": c_t.p50})]
