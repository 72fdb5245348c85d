"""The founding design's tests: one shared provider per table, user context per request."""

from __future__ import annotations

import gc
import threading

import pyarrow as pa
import pytest

import kalam_engine
from kalam_engine import ExecutionContext, Role, TableId


def test_one_provider_answers_two_users_with_their_own_rows(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'a1'), (2, 'a2')", user="alice")
    chat.execute("INSERT INTO app.messages (id, body) VALUES (3, 'b1')", user="bob")
    provider = chat.cache.get_provider(TableId("app", "messages"))
    alice = provider.read(ExecutionContext("alice", Role.USER, "app"))
    bob = provider.read(ExecutionContext("bob", Role.USER, "app"))
    assert sorted(alice["body"].to_pylist()) == ["a1", "a2"]
    assert bob["body"].to_pylist() == ["b1"]
    # the provider holds nothing of either user
    assert not any(isinstance(getattr(provider, s, None), ExecutionContext)
                   for s in ("core", "_store", "_seq", "_retired"))
    assert "alice" not in repr(provider.core) and "bob" not in repr(provider.core)


def test_100_users_by_10_tables_leaves_exactly_10_live_providers():
    with kalam_engine.connect(":memory:") as db:
        db.execute("CREATE NAMESPACE chat")
        for t in range(10):
            db.execute(f"CREATE USER TABLE chat.t{t} (id INT PRIMARY KEY, body TEXT)")
        for u in range(100):
            for t in range(10):
                db.execute(f"INSERT INTO chat.t{t} (id, body) VALUES ({u}, 'x')", user=f"u{u}")
                assert db.execute(f"SELECT body FROM chat.t{t}", user=f"u{u}").row_count == 1
        gc.collect()
        stats = db.cache.stats()
        assert stats.live_providers == 10
        assert stats.built == 10
        assert db.user_count() == 100


def test_get_provider_returns_the_same_object_for_every_caller(chat):
    tid = TableId("app", "messages")
    seen = {id(chat.cache.get_provider(tid)) for _ in range(50)}
    for user in ("alice", "bob", None):
        chat.execute("SELECT * FROM app.messages", user=user)
        seen.add(id(chat.cache.get_provider(tid)))
    assert len(seen) == 1


def test_small_cache_under_threads_never_two_live_providers_per_table():
    db = kalam_engine.connect(":memory:", cache_capacity=3)
    db.execute("CREATE NAMESPACE ns")
    tables = [TableId("ns", f"t{i}") for i in range(10)]
    for tid in tables:
        db.execute(f"CREATE USER TABLE {tid} (id INT PRIMARY KEY)")
    errors: list[str] = []
    held: list = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        for step in range(300):
            tid = tables[(seed * 7 + step * 3) % 10]
            provider = db.cache.get_provider(tid)
            with lock:
                held.append(provider)  # keep references alive, as a running query would
                if len(held) > 40:
                    held.pop(0)
                by_table: dict = {}
                for p in held:
                    by_table.setdefault(p.table_id, set()).add(id(p))
                for t, ids in by_table.items():
                    if len(ids) > 1:
                        errors.append(f"{t}: {len(ids)} live providers")
            if step % 25 == 0:
                db.execute(f"SELECT * FROM {tid}", user=f"user{seed}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = db.cache.stats()
    assert not errors, errors[:5]
    assert stats.entries <= 3
    assert stats.evictions > 0 and stats.revived > 0
    gc.collect()
    assert db.cache.live_providers <= 10
    db.close()


def test_eviction_revives_a_provider_still_referenced():
    db = kalam_engine.connect(":memory:", cache_capacity=1)
    db.execute("CREATE NAMESPACE ns")
    db.execute("CREATE USER TABLE ns.a (id INT PRIMARY KEY)")
    db.execute("CREATE USER TABLE ns.b (id INT PRIMARY KEY)")
    a = db.cache.get_provider(TableId("ns", "a"))
    db.cache.get_provider(TableId("ns", "b"))  # evicts a's entry
    before = db.cache.stats()
    again = db.cache.get_provider(TableId("ns", "a"))
    after = db.cache.stats()
    assert again is a
    assert after.revived == before.revived + 1
    assert after.built == before.built
    del a, again
    db.cache.get_provider(TableId("ns", "b"))  # evict a again; nobody holds it now
    gc.collect()
    built = db.cache.stats().built
    db.cache.get_provider(TableId("ns", "a"))
    assert db.cache.stats().built == built + 1
    db.close()


def test_provider_retired_by_alter_raises_a_clear_error(chat):
    tid = TableId("app", "messages")
    old = chat.cache.get_provider(tid)
    chat.execute("ALTER TABLE app.messages ADD COLUMN mood TEXT")
    new = chat.cache.get_provider(tid)
    assert new is not old and new.core.schema_version == 2
    with pytest.raises(kalam_engine.RetiredProviderError, match=r"app\.messages") as err:
        old.read(ExecutionContext("alice", Role.USER, "app"))
    assert err.value.code == "TABLE_NOT_FOUND"
    with pytest.raises(kalam_engine.RetiredProviderError):
        old.insert(ExecutionContext("alice", Role.USER, "app"), pa.table({"body": ["x"]}))


def test_provider_retired_by_drop(chat):
    old = chat.cache.get_provider(TableId("app", "messages"))
    chat.execute("DROP TABLE app.messages")
    with pytest.raises(kalam_engine.RetiredProviderError, match="dropped"):
        old.read(ExecutionContext("alice", Role.USER, "app"))
    with pytest.raises(kalam_engine.TableNotFoundError):
        chat.cache.get_provider(TableId("app", "messages"))


def test_scan_running_when_retired_finishes(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'x')", user="alice")
    provider = chat.cache.get_provider(TableId("app", "messages"))
    rows = provider.read(ExecutionContext("alice", Role.USER, "app"))
    chat.execute("ALTER TABLE app.messages ADD COLUMN extra INT")
    assert rows["body"].to_pylist() == ["x"]


def test_providers_are_small_and_slotted(chat):
    provider = chat.cache.get_provider(TableId("app", "messages"))
    assert not hasattr(provider, "__dict__")
