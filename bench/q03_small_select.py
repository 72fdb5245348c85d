"""Q3: a small per-user SELECT (1,000 rows) through ``db.execute`` versus raw DataFusion.

The table holds 10 users x 1,000 rows. User ``u3`` runs ``SELECT * FROM bench.t``; the engine
adds KalamDB's default ``ORDER BY id``, reads u3's rows from the shared provider, lends a pooled
SessionContext whose catalog adapter serves them as a MemTable view. The baseline is a plain
DataFusion SessionContext, built once, holding exactly the Arrow table the engine serves u3
(same columns, ``_seq`` and ``_deleted`` included) and running ``SELECT * FROM t ORDER BY id``.
Both return a pyarrow.Table.
"""

from __future__ import annotations

from bench.common import (
    Config,
    Row,
    compare_latency,
    create_table,
    datafusion_ctx,
    datafusion_dataset_ctx,
    engine,
    fmt_ns,
    load_users,
    profile,
    ratio,
    visible_rows,
)

QUESTION = "small per-user SELECT (1,000 rows): db.execute vs raw DataFusion"
ROWS = ("q03.select_p50",)
TARGET = 1.3


def run(cfg: Config) -> list[Row]:
    users, per_user = cfg.size(10, 2), cfg.size(1_000, 50)
    who = f"u{users - 1}" if cfg.tiny else "u3"
    with engine() as db:
        table = create_table(db, "t")
        load_users(db, table, users, per_user)
        sql = f"SELECT * FROM {table}"
        data = visible_rows(db, table, who)
        ctx = datafusion_ctx({"t": data})

        def ours() -> object:
            return db.execute(sql, user=who).to_arrow()

        def theirs() -> object:
            return ctx.sql("SELECT * FROM t ORDER BY id").to_arrow_table()

        got, want = ours(), theirs()
        assert got.num_rows == want.num_rows == per_user, (got.num_rows, want.num_rows)
        a, b = compare_latency(cfg, ours, theirs, n=cfg.size(1_000, 3))
        r = ratio(a.p50, b.p50)
        met = r is not None and r <= TARGET
        profile(cfg, "q03_small_select", ours, cfg.size(300, 1))
        # Where the gap comes from: raw DataFusion doing what the engine does per request
        # (scan a pyarrow.dataset instead of a MemTable; a new SessionContext per statement).
        as_dataset = datafusion_dataset_ctx({"t": data})

        def dataset_reused() -> object:
            return as_dataset.sql("SELECT * FROM t ORDER BY id").to_arrow_table()

        def dataset_fresh() -> object:
            fresh = datafusion_dataset_ctx({"t": data})
            return fresh.sql("SELECT * FROM t ORDER BY id").to_arrow_table()

        c, e = compare_latency(cfg, dataset_reused, dataset_fresh, n=cfg.size(500, 3))
    return [Row("q03.select_p50", f"SELECT {per_user:,} rows of 1 user (of {users}), p50",
                fmt_ns(a.p50), f"DataFusion {fmt_ns(b.p50)}", r, f"<= {TARGET}x", met,
                value=a.p50, unit="ns", baseline_value=b.p50,
                note=f"engine {a.summary()}; DataFusion (MemTable, one SessionContext) "
                     f"{b.summary()}; DataFusion over a pyarrow.dataset: p50 {fmt_ns(c.p50)}, "
                     f"and with a new SessionContext per query: p50 {fmt_ns(e.p50)}",
                extra={"p99_ns": a.p99, "baseline_p99_ns": b.p99,
                       "df_dataset_p50_ns": c.p50, "df_dataset_fresh_ctx_p50_ns": e.p50})]
