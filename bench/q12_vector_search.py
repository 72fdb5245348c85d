"""Q11: nearest-neighbour search, ``ORDER BY COSINE_DISTANCE(e, '[..]') LIMIT 10``, with a vector
index versus a brute-force scan, versus DuckDB's ``array_cosine_distance``.

One user's 100,000 rows of EMBEDDING(384) (random normal vectors), hot in memory. The same rows
are in two tables: one with ``CREATE INDEX e USING COSINE`` (exact top-k over the cached float32
matrix), one without (DataFusion computes every distance and sorts). The baseline is an
in-memory DuckDB table of FLOAT[384] holding the same vectors. All three answer the same ids.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from bench.common import NS, Config, Row, compare_latency, engine, fmt_ns, ratio, sample

QUESTION = "top-10 by COSINE_DISTANCE over 100k x 384-dim vectors: index vs scan vs DuckDB"
ROWS = ("q12.vector_index_p50", "q12.vector_scan_p50")
K = 10
TARGET = 1.0  # the index must beat DuckDB's full scan
SQL = "SELECT id, COSINE_DISTANCE(e, '{q}') AS d FROM {t} ORDER BY d LIMIT {k}"


def run(cfg: Config) -> list[Row]:
    import duckdb

    n, dim = cfg.size(100_000, 500), cfg.size(384, 16)
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    data = pa.table({"id": pa.array(np.arange(n), pa.int64()),
                     "e": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim)})
    query = "[" + ",".join(f"{v:.6f}" for v in rng.standard_normal(dim)) + "]"
    who = "u1"
    with engine() as db:
        for name in ("vec_idx", "vec_raw"):
            db.execute(f"CREATE USER TABLE {NS}.{name} (id BIGINT PRIMARY KEY, "
                       f"e EMBEDDING({dim}))")
            db.insert_arrow(f"{NS}.{name}", data, user=who)
        db.execute(f"ALTER TABLE {NS}.vec_idx CREATE INDEX e USING COSINE")
        indexed = SQL.format(q=query, t=f"{NS}.vec_idx", k=K)
        scanned = SQL.format(q=query, t=f"{NS}.vec_raw", k=K)
        con = duckdb.connect()
        con.register("src", data)
        con.execute(f"CREATE TABLE t AS SELECT id, e::FLOAT[{dim}] AS e FROM src")
        con.unregister("src")
        duck_sql = (f"SELECT id, array_cosine_distance(e, {query}::FLOAT[{dim}]) AS d FROM t "
                    f"ORDER BY d LIMIT {K}")

        def ours() -> pa.Table:
            return db.execute(indexed, user=who).to_arrow()

        def scan() -> pa.Table:
            return db.execute(scanned, user=who).to_arrow()

        def duck() -> list:
            return con.execute(duck_sql).fetchall()

        want = [r[0] for r in duck()]
        assert ours()["id"].to_pylist() == want == scan()["id"].to_pylist()
        build = sample(lambda: db.runner.vectors._indexes.clear() or ours(), n=cfg.size(5, 1),
                       warmup=0)
        a, c = compare_latency(cfg, ours, duck, n=cfg.size(200, 3))
        b = sample(scan, n=cfg.size(20, 1), warmup=cfg.size(2, 0), max_seconds=30)
        con.close()
    r_duck, r_scan = ratio(a.p50, c.p50), ratio(b.p50, a.p50)
    return [
        Row("q12.vector_index_p50", f"top-{K} of {n:,} x {dim} with index, p50", fmt_ns(a.p50),
            f"DuckDB {fmt_ns(c.p50)}", r_duck, f"<= {TARGET}x", r_duck is not None
            and r_duck <= TARGET, value=a.p50, unit="ns", baseline_value=c.p50,
            note=f"engine {a.summary()}; DuckDB array_cosine_distance {c.summary()}; first "
                 f"query after a change (index build) p50 {fmt_ns(build.p50)}",
            extra={"p99_ns": a.p99, "build_p50_ns": build.p50}),
        Row("q12.vector_scan_p50", f"top-{K} of {n:,} x {dim} without index, p50",
            fmt_ns(b.p50), f"index {fmt_ns(a.p50)}", r_scan, "", None, value=b.p50, unit="ns",
            baseline_value=a.p50,
            note=f"brute force {b.summary()}; the index answers {r_scan or 0:.1f}x faster"),
    ]
