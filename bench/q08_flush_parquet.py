"""Q8: flush throughput, and a query over 20 flushed Parquet segments, versus DuckDB.

One user's rows are written and flushed 20 times (``STORAGE FLUSH TABLE``) in batches of
10,000, leaving 20 Parquet segments with 200,000 rows in all (the shape of KalamDB's
flushed_parquet_query benchmark: 20 files, 200K rows), on a real data directory.

- Flush: rows flushed per second of ``STORAGE FLUSH TABLE`` (the statement returns when the
  segment is durable and in the manifest). Baseline: DuckDB's ``COPY ... TO (FORMAT parquet)``
  of the same 10,000-row Arrow batches (DuckDB does not fsync). Reported, no target.
- Query: ``SELECT cat, COUNT(*), SUM(amount) ... GROUP BY cat`` as that user, all data cold.
  Baseline: DuckDB over exactly the segment files the engine wrote (``read_parquet([...])``).

Until the engine has flush, both rows say "n/a: flush not available".
"""

from __future__ import annotations

from pathlib import Path

from bench.common import (
    Config,
    Row,
    compare_latency,
    create_table,
    duckdb_arrow,
    engine,
    fmt_ns,
    fmt_rate,
    make_rows,
    na_row,
    profile,
    ratio,
    temp_dir,
    time_once_ns,
)

QUESTION = "flush rows/s; GROUP BY over 20 flushed segments (200K rows) vs DuckDB"
ROWS = ("q08.flush_rows_per_s", "q08.query_p50")
TARGET = 1.5
SQL = "SELECT cat, COUNT(*) AS n, SUM(amount) AS total FROM {t} GROUP BY cat ORDER BY cat"


def _flush_unavailable(db: object, table: str) -> str | None:
    """None when ``STORAGE FLUSH TABLE`` works on this build, else why not."""
    from kalam_engine import KalamError

    try:
        message = db.execute(f"STORAGE FLUSH TABLE {table}").message or ""  # type: ignore
    except KalamError as exc:
        return f"flush not available ({type(exc).__name__}: {exc})"
    if "skipped" in message.lower() and "no pending" not in message.lower():
        return f"flush not available ({message})"
    return None


def _segments(data_dir: Path) -> list[str]:
    return sorted(str(p) for p in (data_dir / "storage").rglob("*.parquet"))


def run(cfg: Config) -> list[Row]:
    import duckdb

    rounds, per_round = cfg.size(20, 2), cfg.size(10_000, 100)
    who = "u1"
    flush_ns: list[int] = []
    batches = [make_rows(per_round, start=r * per_round) for r in range(rounds)]
    with temp_dir("q08") as d, engine(d / "data") as db:
        table = create_table(db, "t")
        why = _flush_unavailable(db, table)
        if why is not None:
            return [na_row("q08.flush_rows_per_s", "flush rows/s", why),
                    na_row("q08.query_p50", "GROUP BY over 20 segments", why,
                           f"<= {TARGET}x DuckDB")]
        for batch in batches:
            db.insert_arrow(table, batch, user=who)
            flush_ns.append(time_once_ns(lambda: db.execute(f"STORAGE FLUSH TABLE {table}")))
        files = _segments(d / "data")
        sizes = db.data_sizes()
        flush_rate = rounds * per_round / (sum(flush_ns) / 1e9)

        con = duckdb.connect()
        copy_ns = []
        for i, batch in enumerate(batches):
            con.register("batch", batch)
            target = d / f"duck-{i}.parquet"
            copy_ns.append(time_once_ns(lambda target=target: con.execute(
                f"COPY batch TO '{target}' (FORMAT parquet)")))
            con.unregister("batch")
        copy_rate = rounds * per_round / (sum(copy_ns) / 1e9)

        ours_sql = SQL.format(t=table)
        theirs_sql = SQL.format(t=f"read_parquet({files!r})")

        def ours() -> object:
            return db.execute(ours_sql, user=who).to_arrow()

        def theirs() -> object:
            return duckdb_arrow(con, theirs_sql)

        got, want = ours(), theirs()
        assert got["n"].to_pylist() == want["n"].to_pylist(), (got, want)
        a, b = compare_latency(cfg, ours, theirs, n=cfg.size(200, 3))
        r = ratio(a.p50, b.p50)
        met = r is not None and r <= TARGET
        profile(cfg, "q08_flushed_query", ours, cfg.size(50, 1))
        con.close()
    shape = f"{len(files)} segments, {rounds * per_round:,} rows"
    return [
        Row("q08.flush_rows_per_s", f"flush {rounds} x {per_round:,} rows (durable)",
            fmt_rate(flush_rate, "rows/s"), f"DuckDB COPY {fmt_rate(copy_rate, 'rows/s')}",
            ratio(flush_rate, copy_rate), "(reported, no target)", None, value=flush_rate,
            unit="rows/s", baseline_value=copy_rate,
            note=f"per flush p50 {fmt_ns(sorted(flush_ns)[len(flush_ns) // 2])} (fsynced; "
                 f"DuckDB's COPY does not fsync); "
                 f"cold after flush: {sizes.get('cold_rows', '?')} rows, "
                 f"hot {sizes.get('hot_rows')} rows",
            extra={"segments": len(files)}),
        Row("q08.query_p50", f"GROUP BY over {shape}, p50", fmt_ns(a.p50),
            f"DuckDB {fmt_ns(b.p50)}", r, f"<= {TARGET}x", met, value=a.p50, unit="ns",
            baseline_value=b.p50, note=f"engine {a.summary()}; DuckDB {b.summary()}",
            extra={"p99_ns": a.p99, "baseline_p99_ns": b.p99, "files": len(files)}),
    ]
