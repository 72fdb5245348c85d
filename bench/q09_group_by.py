"""Q9: GROUP BY over 10,000 rows of one user, versus DuckDB on the same data.

``SELECT cat, COUNT(*), SUM(amount), AVG(amount) ... GROUP BY cat ORDER BY cat`` as one user
whose 10,000 rows are hot (in memory), in a table that also holds 9 other users. The baseline is
an in-memory DuckDB table loaded with exactly the Arrow rows the engine serves that user, with
the same statement; both return a pyarrow.Table.
"""

from __future__ import annotations

from bench.common import (
    Config,
    Row,
    compare_latency,
    create_table,
    datafusion_ctx,
    datafusion_dataset_ctx,
    duckdb_arrow,
    engine,
    fmt_ns,
    load_users,
    profile,
    ratio,
    visible_rows,
)

QUESTION = "GROUP BY over 10,000 rows of one user vs DuckDB"
ROWS = ("q09.group_by_p50",)
TARGET = 1.5
SQL = ("SELECT cat, COUNT(*) AS n, SUM(amount) AS total, AVG(amount) AS mean FROM {t} "
       "GROUP BY cat ORDER BY cat")


def run(cfg: Config) -> list[Row]:
    import duckdb

    rows = cfg.size(10_000, 100)
    who = "u2"
    with engine() as db:
        table = create_table(db, "t")
        load_users(db, table, 10, rows)
        data = visible_rows(db, table, who)
        con = duckdb.connect()
        con.register("src", data)
        con.execute("CREATE TABLE t AS SELECT * FROM src")
        con.unregister("src")
        ours_sql, theirs_sql = SQL.format(t=table), SQL.format(t="t")

        def ours() -> object:
            return db.execute(ours_sql, user=who).to_arrow()

        def theirs() -> object:
            return duckdb_arrow(con, theirs_sql)

        got, want = ours(), theirs()
        assert got["n"].to_pylist() == want["n"].to_pylist(), (got, want)
        a, b = compare_latency(cfg, ours, theirs, n=cfg.size(1_000, 3))
        r = ratio(a.p50, b.p50)
        met = r is not None and r <= TARGET
        profile(cfg, "q09_group_by", ours, cfg.size(300, 1))
        # For the analysis: DataFusion alone on the same rows, as a MemTable and as the
        # pyarrow.dataset the engine hands it.
        mem, ds = datafusion_ctx({"t": data}), datafusion_dataset_ctx({"t": data})
        c, e = compare_latency(cfg, lambda: mem.sql(theirs_sql).to_arrow_table(),
                               lambda: ds.sql(theirs_sql).to_arrow_table(),
                               n=cfg.size(500, 3))
        con.close()
    return [Row("q09.group_by_p50", f"GROUP BY over {rows:,} rows of 1 user, p50",
                fmt_ns(a.p50), f"DuckDB {fmt_ns(b.p50)}", r, f"<= {TARGET}x", met,
                value=a.p50, unit="ns", baseline_value=b.p50,
                note=f"engine {a.summary()}; DuckDB {b.summary()}; raw DataFusion on the "
                     f"same rows: MemTable p50 {fmt_ns(c.p50)}, pyarrow.dataset p50 "
                     f"{fmt_ns(e.p50)}",
                extra={"p99_ns": a.p99, "baseline_p99_ns": b.p99,
                       "df_memtable_p50_ns": c.p50, "df_dataset_p50_ns": e.p50})]
