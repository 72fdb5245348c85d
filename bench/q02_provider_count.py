"""Q2: how many providers live, and how many cache bytes, as users grow (10 USER tables)?

A per-user design (KalamDB before the founding design) builds one provider per user and table:
users x tables objects. The target is exactly 10 providers whatever the number of users, and
zero extra cache bytes per user.

Users are added cumulatively (1 -> 100 -> 1,000 -> 10,000). Up to 1,000 users, every user runs
one SQL statement through ``db.execute`` that reads all 10 tables. Scaled: users 1,001..10,000
take the same per-request path without DataFusion planning (``db.context(user)`` then
``cache.get_provider(table).read(ctx)`` for each table, which is what the SQL path's catalog
adapter does per table), because 10,000 x 10-table SQL statements alone would take ~2.5 minutes.
Providers are counted twice: the cache's ``weakref.finalize`` count and, independently, the
``BaseTableProvider`` objects the garbage collector can see.
"""

from __future__ import annotations

import gc

from bench.common import NS, Config, Row, create_table, engine, fmt_bytes

QUESTION = "live providers and cache bytes for 1..10,000 users x 10 tables"
ROWS = ("q02.u1", "q02.u100", "q02.u1000", "q02.u10000")
TABLES = 10
SQL_USERS_MAX = 1_000  # above this, users take the direct per-request path (see docstring)


def _gc_providers() -> int:
    from kalam_engine.providers.core import BaseTableProvider

    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, BaseTableProvider))


def _cache_bytes(db: object, table_ids: list) -> tuple[int, int]:
    """(bytes the cache reports, bytes measured again now over the same entries)."""
    from kalam_engine.catalog.cache import measure_entry

    cache = db.cache  # type: ignore[attr-defined]
    now = sum(measure_entry(cache.peek(t)) for t in table_ids if cache.peek(t) is not None)
    return cache.stats().memory_bytes, now


def run(cfg: Config) -> list[Row]:
    from kalam_engine import TableId

    levels = [1, 100, 1_000, 10_000] if not cfg.tiny else [1, 2, 3, 4]
    sql_max = SQL_USERS_MAX if not cfg.tiny else 2
    rows: list[Row] = []
    with engine() as db:
        table_ids = [TableId(NS, f"t{i}") for i in range(TABLES)]
        for tid in table_ids:
            create_table(db, tid.name)
            db.insert_arrow(str(tid), _seed(), user="u0")
        union = " UNION ALL ".join(f"SELECT COUNT(*) AS n FROM {t}" for t in table_ids)
        per_entry = _cache_bytes(db, table_ids)[0] / TABLES
        done = 0
        first_bytes: int | None = None
        for key, level in zip(ROWS, levels, strict=True):
            while done < level:
                user = f"u{done}"
                if done < sql_max:
                    db.execute(union, user=user)
                else:
                    ctx = db.context(user)
                    for tid in table_ids:
                        db.cache.get_provider(tid).read(ctx)
                done += 1
            stats = db.cache.stats()
            reported, remeasured = _cache_bytes(db, table_ids)
            first_bytes = reported if first_bytes is None else first_bytes
            seen = _gc_providers()
            per_user = (reported - first_bytes) / (level - 1) if level > 1 else 0.0
            base_providers = level * TABLES
            met = stats.live_providers == TABLES and seen == TABLES and per_user == 0 \
                and remeasured == reported
            how = "all via db.execute" if level <= sql_max else \
                f"{sql_max:,} via db.execute, {level - sql_max:,} via provider.read (scaled)"
            rows.append(Row(
                key, f"{level:,} users x {TABLES} tables",
                f"{stats.live_providers} providers, {fmt_bytes(reported)}, "
                f"+{per_user:.0f} B/user",
                f"{base_providers:,} providers, {fmt_bytes(base_providers * per_entry)}",
                stats.live_providers / base_providers,
                "exactly 10 providers; 0 extra B/user", met,
                value=float(stats.live_providers), unit="providers",
                baseline_value=float(base_providers),
                note=f"{how}; gc sees {seen} provider objects; cache bytes re-measured now "
                     f"{remeasured:,}; built={stats.built} hits={stats.hits}",
                extra={"live_providers": stats.live_providers, "gc_providers": seen,
                       "cache_bytes": reported, "cache_bytes_remeasured": remeasured,
                       "extra_bytes_per_user": per_user,
                       "per_user_design_bytes": base_providers * per_entry,
                       "hot_bytes": db.data_sizes().get("hot_bytes")}))
    return rows


def _seed() -> object:
    from bench.common import make_rows

    return make_rows(10)
