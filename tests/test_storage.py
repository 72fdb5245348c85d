"""Durable storage: hot log, Parquet flush, manifests, compaction, recovery, stream TTL."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import kalam_engine
from kalam_engine.model.context import TableId
from kalam_engine.model.errors import CorruptDataError, KalamError
from kalam_engine.recover import recover

ALL_TYPES = (
    "id INT PRIMARY KEY, b BOOLEAN, s SMALLINT, i INT, big BIGINT, f FLOAT, d DOUBLE, "
    "amt DECIMAL(10,2), txt TEXT, bin BYTES, j JSON, ts TIMESTAMP, dt DATE, dtm DATETIME, "
    "tm TIME, u UUID, e EMBEDDING(3), fl FILE")
ALL_VALUES = (
    "(1, true, 7, 42, 9000000000, 1.5, 2.25, 12.34, 'hé', X'00ff', '{\"a\": 1}', "
    "'2024-05-01 12:34:56.123456', '2024-05-01', '2024-05-01T12:00:00Z', '12:34:56.5', "
    "'0190a5c2-7c1e-7d6a-9a7b-123456789abc', '[1.0, 2.5, -3.0]', "
    "'{\"id\":\"x\",\"sub\":\"f0001\",\"name\":\"a.txt\",\"size\":1,\"mime\":\"text/plain\","
    "\"sha256\":\"00\"}'), "
    "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL, NULL)")


def open_db(path: Path, **options: Any) -> Any:
    return kalam_engine.connect(path, **options)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store_db(data_dir: Path) -> Any:
    db = open_db(data_dir)
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.msgs (id BIGINT PRIMARY KEY, body TEXT)")
    db.execute("CREATE SHARED TABLE app.rooms (id INT PRIMARY KEY, name TEXT) "
               "WITH (ACCESS_LEVEL='PUBLIC')")
    yield db
    db.close()


def grant(db: Any, user: str, role: str) -> None:
    """Give ``user`` a role by writing system.users directly (user commands are elsewhere)."""
    now = time.time()
    with db._db.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO users (user_id, role, auth_type, created_at, "
                     "updated_at) VALUES (?, ?, 'password', ?, ?)", (user, role, now, now))


def rows(db: Any, user: str | None = None, table: str = "app.msgs") -> list[tuple]:
    out = db.execute(f"SELECT * FROM {table} ORDER BY id", user=user).to_arrow()
    names = [n for n in out.column_names if not n.startswith("_")]
    return [tuple(r[n] for n in names) for r in out.select(names).to_pylist()]


def segment_files(data_dir: Path) -> list[str]:
    base = data_dir / "storage"
    return sorted(p.relative_to(data_dir).as_posix() for p in base.rglob("*") if p.is_file())


def hot_log_rows(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "kalam.sqlite") as conn:
        return conn.execute("SELECT COUNT(*) FROM hot_log").fetchone()[0]


def error_code(exc: pytest.ExceptionInfo[KalamError]) -> str:
    return exc.value.code


# --- flush ------------------------------------------------------------------------------------
def test_flush_writes_one_segment_per_user_and_empties_the_hot_log(store_db: Any,
                                                                   data_dir: Path) -> None:
    db = store_db
    db.execute("INSERT INTO app.msgs VALUES (1, 'a'), (2, 'b')", user="alice")
    db.execute("INSERT INTO app.msgs VALUES (1, 'x')", user="bob")
    res = db.execute("STORAGE FLUSH TABLE app.msgs")
    assert res.message.startswith("Storage flush completed for table 'app.msgs': 3 row(s) in 2 "
                                  "segment(s). Job ID: FL-")
    assert segment_files(data_dir) == ["storage/app/msgs/alice/batch-0.parquet",
                                       "storage/app/msgs/bob/batch-0.parquet"]
    assert hot_log_rows(data_dir) == 0
    assert rows(db, "alice") == [(1, "a"), (2, "b")]
    assert rows(db, "bob") == [(1, "x")]
    job_id = res.message.rsplit(" ", 1)[1]
    jobs = db.execute("SELECT job_id, job_type, status FROM system.jobs").to_arrow().to_pylist()
    assert {"job_id": job_id, "job_type": "flush", "status": "completed"} in jobs
    segments = db._db.query("SELECT scope, row_count, min_pk, max_pk, schema_version "
                            "FROM segments ORDER BY scope")
    assert segments == [("alice", 2, 1, 2, 1), ("bob", 1, 1, 1, 1)]


def test_shared_table_segments_live_in_the_table_directory(store_db: Any,
                                                          data_dir: Path) -> None:
    store_db.execute("INSERT INTO app.rooms VALUES (1, 'lobby')")
    store_db.execute("STORAGE FLUSH TABLE app.rooms")
    assert segment_files(data_dir) == ["storage/app/rooms/batch-0.parquet"]
    table = pq.read_table(data_dir / "storage/app/rooms/batch-0.parquet")
    assert table.schema.field("name").metadata[b"kalam_column_id"] == b"1"
    assert table.column_names == ["id", "name", "_seq", "_deleted"]


def test_flush_with_nothing_pending_is_skipped(store_db: Any) -> None:
    res = store_db.execute("STORAGE FLUSH TABLE app.msgs")
    assert res.message == "Storage flush skipped: no pending writes for table 'app.msgs'"
    status = store_db.execute("SELECT status FROM system.jobs").to_arrow()["status"].to_pylist()
    assert status == ["skipped"]


def test_flush_and_compact_refuse_stream_tables(store_db: Any) -> None:
    store_db.execute("CREATE STREAM TABLE app.ev (id INT, v TEXT) WITH (TTL_SECONDS=60)")
    for verb in ("FLUSH", "COMPACT"):
        with pytest.raises(KalamError) as exc:
            store_db.execute(f"STORAGE {verb} TABLE app.ev")
        assert error_code(exc) == "UNSUPPORTED"
        assert f"STORAGE {verb} TABLE is not supported for STREAM tables" in str(exc.value)


def test_storage_commands_need_role_service(store_db: Any) -> None:
    store_db.execute("INSERT INTO app.msgs VALUES (1, 'a')", user="alice")
    for sql in ("STORAGE FLUSH TABLE app.msgs", "STORAGE FLUSH ALL IN app",
                "STORAGE COMPACT TABLE app.msgs", "STORAGE COMPACT ALL"):
        with pytest.raises(KalamError) as exc:
            store_db.execute(sql, user="alice")
        assert error_code(exc) == "PERMISSION_DENIED"
    assert store_db.data_sizes()["cold_rows"] == 0  # the rejected statements changed nothing
    grant(store_db, "svc", "service")
    assert "completed" in store_db.execute("STORAGE FLUSH TABLE app.msgs", user="svc").message


def test_unknown_table_and_namespace(store_db: Any) -> None:
    with pytest.raises(KalamError) as exc:
        store_db.execute("STORAGE FLUSH TABLE app.nope")
    assert error_code(exc) == "TABLE_NOT_FOUND"
    with pytest.raises(KalamError) as exc:
        store_db.execute("STORAGE FLUSH ALL IN nope")
    assert error_code(exc) == "NAMESPACE_NOT_FOUND"
    with pytest.raises(KalamError) as exc:
        store_db.execute("STORAGE VACUUM TABLE app.msgs")
    assert error_code(exc) == "UNSUPPORTED"


def test_flush_all_uses_the_named_or_session_namespace(store_db: Any, data_dir: Path) -> None:
    db = store_db
    db.execute("CREATE STREAM TABLE app.ev (id INT, v TEXT) WITH (TTL_SECONDS=60)")
    db.execute("INSERT INTO app.msgs VALUES (1, 'a')", user="alice")
    db.execute("INSERT INTO app.rooms VALUES (1, 'lobby')")
    db.execute("INSERT INTO app.ev VALUES (1, 'e')", user="alice")
    res = db.execute("STORAGE FLUSH ALL")  # session namespace is 'default': nothing there
    assert res.row_count == 0 and segment_files(data_dir) == []
    db.execute("USE app")
    res = db.execute("STORAGE FLUSH ALL")
    assert res.message == ("Storage flush completed for 2 of 2 table(s) in namespace 'app' "
                           "(2 row(s), 2 segment(s))")
    assert sorted(res.to_arrow()["table"].to_pylist()) == ["app.msgs", "app.rooms"]
    assert db.data_sizes()["hot_rows"] == 1  # the stream row stays hot
    res = db.execute("STORAGE FLUSH ALL IN NAMESPACE app")
    assert res.to_arrow()["status"].to_pylist() == ["skipped", "skipped"]


def test_memory_database_flush_is_a_noop_that_says_so() -> None:
    with kalam_engine.connect(":memory:") as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.m (id INT PRIMARY KEY) WITH (FLUSH_POLICY='rows:1')")
        db.execute("INSERT INTO app.m VALUES (1), (2)", user="alice")
        msg = db.execute("STORAGE FLUSH TABLE app.m").message
        assert "skipped" in msg and ":memory:" in msg
        assert "skipped" in db.execute("STORAGE COMPACT ALL IN app").message
        assert rows(db, "alice", "app.m") == [(1,), (2,)]


def test_flush_policy_rows_flushes_automatically(data_dir: Path) -> None:
    with open_db(data_dir) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.m (id INT PRIMARY KEY, v TEXT) "
                   "WITH (FLUSH_POLICY='rows:3')")
        for i in range(7):
            db.execute(f"INSERT INTO app.m VALUES ({i}, 'v')", user="alice")
        db.execute("INSERT INTO app.m VALUES (1, 'b')", user="bob")
        assert segment_files(data_dir) == ["storage/app/m/alice/batch-0.parquet",
                                           "storage/app/m/alice/batch-1.parquet"]
        assert db.data_sizes() | {"hot_bytes": 0} == {"hot_rows": 2, "hot_bytes": 0,
                                                      "cold_rows": 6,
                                                      "cold_bytes": db.data_sizes()["cold_bytes"]}
        trig = db._db.query("SELECT parameters FROM jobs")
        assert all('"trigger": "policy"' in p for (p,) in trig) and len(trig) == 2
        assert [r[0] for r in rows(db, "alice", "app.m")] == list(range(7))


# --- reads across hot and cold ----------------------------------------------------------------
def test_updates_and_deletes_shadow_cold_rows(store_db: Any) -> None:
    db = store_db
    db.execute("INSERT INTO app.msgs VALUES (1, 'a'), (2, 'b'), (3, 'c')", user="alice")
    db.execute("STORAGE FLUSH TABLE app.msgs")
    db.execute("UPDATE app.msgs SET body = 'B' WHERE id = 2", user="alice")
    db.execute("DELETE FROM app.msgs WHERE id = 3", user="alice")
    assert rows(db, "alice") == [(1, "a"), (2, "B")]
    db.execute("STORAGE FLUSH TABLE app.msgs")
    assert rows(db, "alice") == [(1, "a"), (2, "B")]
    assert db.execute("SELECT COUNT(*) AS n FROM app.msgs WHERE body = 'b'",
                      user="alice").to_arrow()["n"].to_pylist() == [0]


def test_primary_key_uniqueness_covers_cold_rows(data_dir: Path) -> None:
    with open_db(data_dir) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.msgs (id BIGINT PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO app.msgs VALUES (1, 'a'), (2, 'b')", user="alice")
        db.execute("STORAGE FLUSH TABLE app.msgs")
        with pytest.raises(KalamError) as exc:
            db.execute("INSERT INTO app.msgs VALUES (3, 'c'), (1, 'dup')", user="alice")
        assert error_code(exc) == "INVALID_PARAMETER" and "already exists" in str(exc.value)
        db.execute("INSERT INTO app.msgs VALUES (1, 'other user')", user="bob")
    with open_db(data_dir) as db:  # rebuilt from segments on open
        with pytest.raises(KalamError):
            db.execute("INSERT INTO app.msgs VALUES (2, 'dup')", user="alice")
        assert rows(db, "alice") == [(1, "a"), (2, "b")]  # the rejected insert wrote nothing
        db.execute("DELETE FROM app.msgs WHERE id = 2", user="alice")
        db.execute("STORAGE FLUSH TABLE app.msgs")
        db.execute("INSERT INTO app.msgs VALUES (2, 'again')", user="alice")
        assert rows(db, "alice") == [(1, "a"), (2, "again")]


def test_tombstone_survives_flush_compact_and_reopen(data_dir: Path) -> None:
    with open_db(data_dir) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.msgs (id BIGINT PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO app.msgs VALUES (1, 'a'), (2, 'b')", user="alice")
        db.execute("STORAGE FLUSH TABLE app.msgs")
        db.execute("DELETE FROM app.msgs WHERE id = 1", user="alice")
        db.execute("STORAGE FLUSH TABLE app.msgs")  # the tombstone goes to its own segment
        kinds = pq.read_table(data_dir / "storage/app/msgs/alice/batch-1.parquet")
        assert kinds["_deleted"].to_pylist() == [True]
    with open_db(data_dir) as db:
        assert rows(db, "alice") == [(2, "b")]
        db.execute("INSERT INTO app.msgs VALUES (3, 'c')", user="alice")
        db.execute("STORAGE FLUSH TABLE app.msgs")
        res = db.execute("STORAGE COMPACT TABLE app.msgs")
        assert "3 segment(s) merged into 1 (2 row(s))" in res.message
        assert rows(db, "alice") == [(2, "b"), (3, "c")]
        assert segment_files(data_dir) == ["storage/app/msgs/alice/batch-3.parquet"]
        # fully compacted: the tombstone shadowed nothing left, so it is gone
        assert db.data_sizes()["cold_rows"] == 2
    with open_db(data_dir) as db:
        assert rows(db, "alice") == [(2, "b"), (3, "c")]
        assert "nothing to compact" in db.execute("STORAGE COMPACT TABLE app.msgs").message


def test_compact_all_merges_every_partition(store_db: Any, data_dir: Path) -> None:
    db = store_db
    for user in ("alice", "bob"):
        for i in range(3):
            db.execute(f"INSERT INTO app.msgs VALUES ({i}, '{user}')", user=user)
            db.execute("STORAGE FLUSH TABLE app.msgs")
    db.execute("UPDATE app.msgs SET body = 'z' WHERE id = 0", user="bob")
    res = db.execute("STORAGE COMPACT ALL IN app")
    assert res.to_arrow()["status"].to_pylist() == ["completed", "skipped"]
    assert len(segment_files(data_dir)) == 2
    assert rows(db, "bob") == [(0, "z"), (1, "bob"), (2, "bob")]
    stats = db.execute("SHOW STATS FOR TABLE app.msgs").to_arrow()
    assert stats["flushed_segments"].to_pylist() == [2]


def test_every_data_type_round_trips_through_flush_compaction_and_reopen(
        data_dir: Path) -> None:
    with open_db(data_dir) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute(f"CREATE SHARED TABLE app.t ({ALL_TYPES})")
        db.execute(f"INSERT INTO app.t VALUES {ALL_VALUES}")
        before = db.execute("SELECT * FROM app.t ORDER BY id").to_arrow()
        db.execute("STORAGE FLUSH TABLE app.t")
        flushed = db.execute("SELECT * FROM app.t ORDER BY id").to_arrow()
        db.execute("UPDATE app.t SET txt = txt WHERE id = 2")
        db.execute("STORAGE FLUSH TABLE app.t")
        db.execute("STORAGE COMPACT TABLE app.t")
        compacted = db.execute("SELECT * FROM app.t ORDER BY id").to_arrow()
    with open_db(data_dir) as db:
        reopened = db.execute("SELECT * FROM app.t ORDER BY id").to_arrow()
    user_cols = [n for n in before.column_names if not n.startswith("_")]
    assert before.schema.equals(reopened.schema, check_metadata=True)
    for other in (flushed, compacted, reopened):
        assert other.select(user_cols).equals(before.select(user_cols))
    assert before["e"].to_pylist()[0] == [1.0, 2.5, -3.0]


def test_cold_rows_follow_schema_evolution_by_column_id(store_db: Any) -> None:
    db = store_db
    db.execute("INSERT INTO app.msgs VALUES (1, 'a')", user="alice")
    db.execute("STORAGE FLUSH TABLE app.msgs")
    db.execute("ALTER TABLE app.msgs RENAME COLUMN body TO text")
    db.execute("ALTER TABLE app.msgs ADD COLUMN n INT")
    db.execute("INSERT INTO app.msgs VALUES (2, 'b', 5)", user="alice")
    db.execute("STORAGE FLUSH TABLE app.msgs")
    assert rows(db, "alice") == [(1, "a", None), (2, "b", 5)]
    db.execute("STORAGE COMPACT TABLE app.msgs")
    assert rows(db, "alice") == [(1, "a", None), (2, "b", 5)]
    versions = db._db.query("SELECT schema_version FROM segments")
    assert versions == [(3,)]


# --- reopen and recovery ----------------------------------------------------------------------
def test_reopen_brings_back_namespaces_tables_versions_users_and_rows(data_dir: Path) -> None:
    with open_db(data_dir, durability="normal") as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.msgs (id BIGINT PRIMARY KEY, body TEXT)")
        db.execute("ALTER TABLE app.msgs ADD COLUMN n INT")
        grant(db, "svc", "service")
        db.execute("INSERT INTO app.msgs VALUES (1, 'a', 1)", user="alice")
        db.execute("STORAGE FLUSH TABLE app.msgs")
        db.execute("INSERT INTO app.msgs VALUES (2, 'b', 2)", user="alice")
        seq_before = db.storage.seq.next_id()
    with open_db(data_dir) as db:
        assert "app" in db.catalog_snapshot()
        assert db.catalog.load_table(TableId("app", "msgs")).schema_version == 2
        assert db.role_of("svc").label == "service"
        assert rows(db, "alice") == [(1, "a", 1), (2, "b", 2)]
        assert db.storage.seq.next_id() > seq_before
    with pytest.raises(KalamError) as exc:
        open_db(data_dir, durability="sometimes")
    assert error_code(exc) == "INVALID_PARAMETER"


def _flush_cut_short(db: Any, table: str, scope: str) -> None:
    """Do a flush's file write but not its commit: what a crash at that moment leaves."""
    store = db.storage.existing_store(TableId("app", table))
    rows_ = store.existing_partition(scope).hot_versions(store.schema)
    db.storage.flusher._write(store, scope, rows_)


def test_recovery_undoes_a_half_done_flush_and_removes_stray_files(data_dir: Path) -> None:
    with open_db(data_dir) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.msgs (id BIGINT PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO app.msgs VALUES (1, 'a')", user="alice")
        db.execute("STORAGE FLUSH TABLE app.msgs")
        db.execute("INSERT INTO app.msgs VALUES (2, 'b')", user="alice")
        _flush_cut_short(db, "msgs", "alice")
    base = data_dir / "storage/app/msgs/alice"
    assert sorted(p.name for p in base.iterdir()) == ["batch-0.parquet", "batch-1.parquet"]
    shutil.copy(base / "batch-0.parquet", base / "batch-7.parquet.tmp")
    (data_dir / "storage/app/gone/bob").mkdir(parents=True)
    shutil.copy(base / "batch-0.parquet", data_dir / "storage/app/gone/bob/batch-0.parquet")
    # The half-done flush is recorded in the catalog, so it is undone; the stray file is not: it
    # is never deleted on a guess. Opening refuses until the recovery command moves it aside.
    with pytest.raises(CorruptDataError, match=r"storage/app/gone/bob/batch-0\.parquet"):
        open_db(data_dir)
    assert (data_dir / "storage/app/gone/bob/batch-0.parquet").exists()
    report = recover(data_dir)
    assert report.moved == ["storage/app/gone/bob/batch-0.parquet"]
    assert (report.quarantine / "storage/app/gone/bob/batch-0.parquet").exists()
    with open_db(data_dir) as db:
        assert segment_files(data_dir) == ["storage/app/msgs/alice/batch-0.parquet"]
        assert not (data_dir / "storage/app/gone").exists()
        assert rows(db, "alice") == [(1, "a"), (2, "b")]  # each exactly once
        db.execute("STORAGE FLUSH TABLE app.msgs")
        db.execute("INSERT INTO app.msgs VALUES (3, 'c')", user="alice")
        assert rows(db, "alice") == [(1, "a"), (2, "b"), (3, "c")]


def test_reads_touch_only_the_callers_segments(data_dir: Path) -> None:
    with open_db(data_dir) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.msgs (id BIGINT PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO app.msgs VALUES (1, 'a')", user="alice")
        db.execute("INSERT INTO app.msgs VALUES (1, 'b')", user="bob")
        db.execute("STORAGE FLUSH TABLE app.msgs")
    with open_db(data_dir) as db:
        (data_dir / "storage/app/msgs/alice/batch-0.parquet").unlink()  # alice's unreadable now
        assert rows(db, "bob") == [(1, "b")]
        db.execute("INSERT INTO app.msgs VALUES (2, 'c')", user="bob")


def test_drop_table_deletes_its_files_and_rows(store_db: Any, data_dir: Path) -> None:
    db = store_db
    db.execute("INSERT INTO app.msgs VALUES (1, 'a')", user="alice")
    db.execute("STORAGE FLUSH TABLE app.msgs")
    db.execute("INSERT INTO app.msgs VALUES (2, 'b')", user="alice")
    db.execute("DROP TABLE app.msgs")
    assert not (data_dir / "storage/app/msgs").exists()
    assert db._db.query("SELECT COUNT(*) FROM segments") == [(0,)]
    assert hot_log_rows(data_dir) == 0
    db.execute("CREATE USER TABLE app.msgs (id BIGINT PRIMARY KEY, body TEXT)")
    assert rows(db, "alice") == []


def test_figures_report_hot_and_cold(store_db: Any) -> None:
    db = store_db
    db.execute("INSERT INTO app.msgs VALUES (1, 'a'), (2, 'b')", user="alice")
    db.execute("STORAGE FLUSH TABLE app.msgs")
    db.execute("INSERT INTO app.msgs VALUES (3, 'c')", user="alice")
    sizes = db.data_sizes()
    assert sizes["hot_rows"] == 1 and sizes["cold_rows"] == 2 and sizes["cold_bytes"] > 0
    stats = {s["table"]: s for s in db.table_stats()}["app.msgs"]
    assert (stats["hot_rows"], stats["cold_rows"]) == (1, 2)
    assert stats["cold_bytes"] == sizes["cold_bytes"]


# --- STREAM TTL -------------------------------------------------------------------------------
def test_stream_rows_expire_at_read_and_are_evicted(data_dir: Path) -> None:
    with open_db(data_dir) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE STREAM TABLE app.ev (id INT, v TEXT) WITH (TTL_SECONDS=1)")
        db.execute("INSERT INTO app.ev VALUES (1, 'a'), (2, 'b')", user="alice")
        assert len(rows(db, "alice", "app.ev")) == 2
        # an injected clock: nothing has expired yet, then everything has
        assert db.storage.evict_expired(now=time.time()) == 0
        time.sleep(1.1)
        assert rows(db, "alice", "app.ev") == []  # invisible at once
        assert db.data_sizes()["hot_rows"] == 2  # until evicted
        db.storage.start_eviction(interval=0.02)
        deadline = time.time() + 3
        while db.data_sizes()["hot_rows"] and time.time() < deadline:
            time.sleep(0.02)
        assert db.data_sizes()["hot_rows"] == 0
        assert hot_log_rows(data_dir) == 0
        db.execute("INSERT INTO app.ev VALUES (3, 'c')", user="alice")
    with open_db(data_dir) as db:
        assert rows(db, "alice", "app.ev") == [(3, "c")]
        assert db.storage.evict_expired(now=time.time() + 5) == 1  # also evicted on open
        assert hot_log_rows(data_dir) == 0
