"""SchemaCache: LRU bounds, honest figures, memory checked against tracemalloc."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

import kalam_engine
from kalam_engine import TableId
from kalam_engine.catalog.cache import SchemaCache
from kalam_engine.model.definitions import TableDefinition
from kalam_engine.model.ids import SnowflakeGenerator
from kalam_engine.providers.core import TableProviderCore
from kalam_engine.providers.user import UserTableProvider
from kalam_engine.storage.hot_log import HotLog
from kalam_engine.storage.sqlite_db import SqliteDatabase
from kalam_engine.storage.table_store import TableStore


def _definitions(n: int) -> dict[TableId, str]:
    with kalam_engine.connect(":memory:") as db:
        db.execute("CREATE NAMESPACE ns")
        db.execute("CREATE USER TABLE ns.tmpl (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), "
                   "body TEXT NOT NULL, author TEXT DEFAULT CURRENT_USER(), score DOUBLE, "
                   "created TIMESTAMP DEFAULT NOW())")
        text = db.catalog.load_table(TableId("ns", "tmpl")).to_json()
    return {TableId("ns", f"t{i}"): text.replace('"tmpl"', f'"t{i}"') for i in range(n)}


def test_memory_bytes_matches_tracemalloc_within_25_percent():
    defs = _definitions(300)
    log = HotLog(SqliteDatabase(None))
    seq = SnowflakeGenerator()
    stores = {tid: TableStore(TableDefinition.from_json(text), "id", log)
              for tid, text in defs.items()}

    def factory(d: TableDefinition) -> UserTableProvider:
        return UserTableProvider(TableProviderCore.from_definition(d), stores[d.table_id], seq)

    cache = SchemaCache(lambda tid: TableDefinition.from_json(defs[tid]), factory,
                        lambda d: f"/data/storage/{d.table_id.namespace}/{d.table_id.name}",
                        capacity=1000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for tid in defs:
            cache.get_provider(tid)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    traced = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    reported = cache.stats().memory_bytes
    assert reported > 0
    assert abs(reported - traced) <= 0.25 * traced, (reported, traced)


def test_stats_count_hits_misses_evictions():
    db = kalam_engine.connect(":memory:", cache_capacity=2)
    db.execute("CREATE NAMESPACE ns")
    for name in "abc":
        db.execute(f"CREATE USER TABLE ns.{name} (id INT PRIMARY KEY)")
    stats = db.cache.stats()
    assert stats.entries == 2 and stats.capacity == 2 and stats.evictions == 1
    assert stats.built == 3
    hits = stats.hits
    db.cache.get_provider(TableId("ns", "c"))
    assert db.cache.stats().hits == hits + 1
    db.cache.get_provider(TableId("ns", "a"))  # evicted and unreferenced: a miss
    s2 = db.cache.stats()
    assert s2.misses == stats.misses + 1 and s2.evictions == 2
    db.close()


def test_cache_memory_does_not_grow_with_users(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'x')", user="u0")
    first = chat.cache.stats().memory_bytes
    for u in range(200):
        chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'x')", user=f"u{u + 1}")
        chat.execute("SELECT * FROM app.messages", user=f"u{u + 1}")
    assert chat.cache.stats().memory_bytes == first


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        SchemaCache(lambda t: None, lambda d: None, lambda d: "", capacity=0)


def test_system_stats_table_reports_cache_figures(chat):
    table = chat.execute("SELECT metric_name, metric_value FROM system.stats").to_arrow()
    metrics = dict(zip(table["metric_name"].to_pylist(), table["metric_value"].to_pylist(),
                       strict=True))
    stats = chat.cache.stats()
    assert int(metrics["live_providers"]) == stats.live_providers
    assert int(metrics["schema_cache_capacity"]) == stats.capacity
    assert int(metrics["providers_built"]) == stats.built
