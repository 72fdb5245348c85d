"""Q5: primary-key point lookup, ``SELECT * FROM bench.t WHERE id = $1``.

One user holds 10,000 rows (KalamDB's own point_lookup benchmark uses 10K rows); keys are drawn
at random from them. The baseline is raw DataFusion over the same Arrow table, with the same
statement (including the engine's default ``ORDER BY id``) and the same ``$1`` parameter.
The target is absolute: a p50 of 100 µs.
"""

from __future__ import annotations

import random

from bench.common import (
    Config,
    Row,
    compare_latency,
    create_table,
    datafusion_ctx,
    engine,
    fmt_ns,
    load_users,
    profile,
    ratio,
    visible_rows,
)

QUESTION = "primary-key point lookup: db.execute vs raw DataFusion"
ROWS = ("q05.point_p50",)
TARGET_NS = 100_000


def run(cfg: Config) -> list[Row]:
    rows = cfg.size(10_000, 100)
    who = "u1"
    rng = random.Random(5)
    with engine() as db:
        table = create_table(db, "t")
        load_users(db, table, 2, rows)
        data = visible_rows(db, table, who)
        keys = data["id"].to_pylist()
        ctx = datafusion_ctx({"t": data})
        sql = f"SELECT * FROM {table} WHERE id = $1"

        def ours() -> object:
            return db.execute(sql, user=who, params=[rng.choice(keys)]).to_arrow()

        def theirs() -> object:
            return ctx.sql("SELECT * FROM t WHERE id = $1 ORDER BY id",
                           param_values={"1": rng.choice(keys)}).to_arrow_table()

        assert ours().num_rows == theirs().num_rows == 1
        a, b = compare_latency(cfg, ours, theirs, n=cfg.size(2_000, 3))
        met = a.p50 <= TARGET_NS
        profile(cfg, "q05_point_lookup", ours, cfg.size(500, 1))
    return [Row("q05.point_p50", f"PK lookup in {rows:,} rows of 1 user, p50", fmt_ns(a.p50),
                f"DataFusion {fmt_ns(b.p50)}", ratio(a.p50, b.p50), "p50 <= 100 µs", met,
                value=a.p50, unit="ns", baseline_value=b.p50,
                note=f"engine {a.summary()}; DataFusion {b.summary()}",
                extra={"p99_ns": a.p99, "baseline_p99_ns": b.p99})]
