"""Q6: bulk insert of a pandas DataFrame through ``df.kalam.insert``, durable, in rows/s.

The engine writes to a real data directory (a temp dir) with the default durability (SQLite
WAL, synchronous=FULL): when ``insert`` returns, the rows are on disk. The baseline is stdlib
sqlite3 in a temp file with the same settings: ``executemany`` over
``df.itertuples(index=False, name=None)`` in one transaction, so both start from the same
DataFrame. Each side runs 3 times into a fresh table; the median is reported.
"""

from __future__ import annotations

import statistics

import pandas as pd

from bench.common import (
    Config,
    Row,
    create_table,
    engine,
    fmt_rate,
    jupyter_layer_missing,
    make_rows,
    profile,
    ratio,
    sqlite_connect,
    temp_dir,
    time_once_ns,
)

QUESTION = "bulk insert via df.kalam.insert (durable) vs SQLite executemany, rows/s"
ROWS = ("q06.bulk_rows_per_s",)
TARGET = 1_000_000.0


def _sqlite_rate(df: pd.DataFrame, repeats: int) -> float:
    rates = []
    for r in range(repeats):
        with temp_dir("q06-sqlite") as d:
            conn = sqlite_connect(d / "base.sqlite")

            def load(conn: object = conn) -> None:
                conn.execute("BEGIN")  # type: ignore[attr-defined]
                conn.executemany(  # type: ignore[attr-defined]
                    "INSERT INTO t VALUES (?, ?, ?, ?)", df.itertuples(index=False, name=None))
                conn.execute("COMMIT")  # type: ignore[attr-defined]

            rates.append(len(df) / (time_once_ns(load) / 1e9))
            got = conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]
            assert got == len(df), (got, r)
            conn.close()
    return statistics.median(rates)


def run(cfg: Config) -> list[Row]:
    n = cfg.size(1_000_000, 200)
    repeats = cfg.size(3, 1)
    df = make_rows(n).to_pandas()
    missing = jupyter_layer_missing()
    rates = []
    with temp_dir("q06") as d, engine(d / "data") as db:

        def load(table: str) -> None:
            if missing is None:
                df.kalam.insert(table, user="u1", db=db)
            else:  # the notebook layer is not there: the same bulk path it would take
                import pyarrow as pa

                db.insert_arrow(table, pa.Table.from_pandas(df, preserve_index=False),
                                user="u1")

        for r in range(repeats):
            table = create_table(db, f"t{r}")
            rates.append(n / (time_once_ns(lambda table=table: load(table)) / 1e9))
            counted = db.execute(f"SELECT COUNT(*) AS n FROM {table}", user="u1").to_arrow()
            assert counted["n"][0].as_py() == n
        ours = statistics.median(rates)
        met = ours >= TARGET
        if cfg.profile:
            extra = create_table(db, "tp")
            profile(cfg, "q06_bulk_insert", lambda: load(extra), 1)
    base = _sqlite_rate(df, repeats)
    how = "df.kalam.insert" if missing is None else f"insert_arrow ({missing})"
    return [Row("q06.bulk_rows_per_s", f"bulk insert {n:,} rows, durable ({how})",
                fmt_rate(ours, "rows/s"), f"SQLite executemany {fmt_rate(base, 'rows/s')}",
                ratio(ours, base), ">= 1,000,000 rows/s", met, value=ours, unit="rows/s",
                baseline_value=base,
                note=f"runs: {', '.join(fmt_rate(x, 'rows/s') for x in rates)}",
                extra={"runs": rates})]
