"""Q4: does a user's SELECT get slower when the table holds many other users?

The same statement as Q3 (``SELECT * FROM bench.t`` as one user with 1,000 rows) on two engines:
one whose table holds 10 users, one whose table holds 10,000 users (10 million rows in all).
Both run in the same process and are timed interleaved. USER tables keep each user's rows in
their own partition, so the target is at most 1.2x.
"""

from __future__ import annotations

import contextlib

from bench.common import (
    Config,
    Row,
    compare_latency,
    create_table,
    engine,
    fmt_ns,
    load_users,
    profile,
    ratio,
)

QUESTION = "per-user SELECT with 10 vs 10,000 users in the table"
ROWS = ("q04.select_10k_users_p50",)
TARGET = 1.2


def run(cfg: Config) -> list[Row]:
    few, many, per_user = 10, cfg.size(10_000, 20), cfg.size(1_000, 20)
    who = "u3"
    with contextlib.ExitStack() as stack:
        small = stack.enter_context(engine())
        big = stack.enter_context(engine())
        for db, users in ((small, few), (big, many)):
            table = create_table(db, "t")
            load_users(db, table, users, per_user)
        sql = f"SELECT * FROM {table}"

        def at_many() -> object:
            return big.execute(sql, user=who).to_arrow()

        def at_few() -> object:
            return small.execute(sql, user=who).to_arrow()

        assert at_many().num_rows == at_few().num_rows == per_user
        a, b = compare_latency(cfg, at_many, at_few, n=cfg.size(1_000, 3))
        r = ratio(a.p50, b.p50)
        met = r is not None and r <= TARGET
        profile(cfg, "q04_many_users", at_many, cfg.size(300, 1))
        hot_rows = big.data_sizes()["hot_rows"]
    return [Row("q04.select_10k_users_p50",
                f"SELECT {per_user:,} rows of 1 user, {many:,} users in table, p50",
                fmt_ns(a.p50), f"{few} users {fmt_ns(b.p50)}", r, f"<= {TARGET}x", met,
                value=a.p50, unit="ns", baseline_value=b.p50,
                note=f"{many:,} users: {a.summary()}; {few} users: {b.summary()}; "
                     f"{hot_rows:,} hot rows in the big table",
                extra={"p99_ns": a.p99, "baseline_p99_ns": b.p99, "users": many})]
