"""Storages (CREATE/DROP STORAGE, SHOW STORAGES, STORAGE CHECK, system.storages,
system.manifest) and tables WITH (STORAGE_ID=...) whose segments live under a custom base."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import kalam_engine
from kalam_engine.model.errors import (
    AlreadyExistsError,
    ConstraintError,
    CorruptDataError,
    DataDirectoryLockedError,
    InvalidParameterError,
    InvalidSqlError,
    KalamError,
    PermissionDeniedError,
    StorageError,
    UnsupportedError,
)
from kalam_engine.recover import recover

STORAGE_COLUMNS = ["storage_id", "storage_name", "description", "storage_type", "base_directory",
                   "credentials", "config_json", "shared_tables_template",
                   "user_tables_template", "created_at", "updated_at"]
MANIFEST_COLUMNS = ["cache_key", "namespace_id", "table_name", "scope", "etag",
                    "last_refreshed", "last_accessed", "in_memory", "sync_state",
                    "manifest_json"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def ext(tmp_path: Path) -> Path:
    return tmp_path / "ext"


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def parquet_under(root: Path) -> list[str]:
    return [p for p in files_under(root) if p.endswith(".parquet")]


def storage_ids(db: Any) -> list[str]:
    return db.execute("SELECT storage_id FROM system.storages ORDER BY storage_id") \
        .to_arrow()["storage_id"].to_pylist()


def grant(db: Any, user: str, role: str) -> None:
    db.execute(f"CREATE USER {user} WITH PASSWORD 'password123' ROLE {role}")


def setup_archive(db: Any, ext: Path) -> None:
    db.execute(f"CREATE STORAGE archive TYPE filesystem NAME 'Archive' DESCRIPTION 'cold' "
               f"PATH '{ext}' SHARED_TABLES_TEMPLATE 'shared/{{namespace}}/{{tableName}}' "
               "USER_TABLES_TEMPLATE 'users/{shard}/{userId}/{namespace}/{tableName}'")
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.m (id INT PRIMARY KEY, v TEXT) "
               "WITH (STORAGE_ID='archive')")
    db.execute("CREATE SHARED TABLE app.s (id INT PRIMARY KEY, v TEXT) "
               "WITH (STORAGE_ID='archive')")


def test_show_storages_has_the_local_row_with_kalamdb_columns(data_dir: Path) -> None:
    with kalam_engine.connect(data_dir) as db:
        res = db.execute("SHOW STORAGES", user="someone")  # every role may list them
        table = res.to_arrow()
        assert table.column_names == STORAGE_COLUMNS
        row = table.to_pylist()[0]
        assert (row["storage_id"], row["storage_type"]) == ("local", "filesystem")
        assert row["base_directory"] == str(data_dir / "storage")
        assert row["shared_tables_template"] == "{namespace}/{tableName}"
        assert row["user_tables_template"] == "{namespace}/{tableName}/{userId}"
        assert db.execute("SELECT * FROM system.storages").to_arrow().column_names \
            == STORAGE_COLUMNS


def test_segments_follow_the_storage_base_and_templates(data_dir: Path, ext: Path) -> None:
    with kalam_engine.connect(data_dir) as db:
        setup_archive(db, ext)
        db.execute("INSERT INTO app.m VALUES (1, 'a'), (2, 'b')", user="alice")
        db.execute("INSERT INTO app.s VALUES (1, 'x')")
        db.execute("STORAGE FLUSH TABLE app.m")
        db.execute("STORAGE FLUSH TABLE app.s")
        db.execute("INSERT INTO app.m VALUES (3, 'c')", user="alice")
        db.execute("STORAGE FLUSH TABLE app.m")
        assert "2 segment(s) merged into 1" in db.execute("STORAGE COMPACT TABLE app.m").message
        assert parquet_under(data_dir) == []
        found = parquet_under(ext)
        assert found[0] == "shared/app/s/batch-0.parquet"
        assert len(found) == 2 and found[1].startswith("users/")
        assert found[1].endswith("/alice/app/m/batch-2.parquet")
        row = db.execute("SELECT * FROM system.storages WHERE storage_id = 'archive'") \
            .to_arrow().to_pylist()[0]
        assert row["storage_name"] == "Archive" and row["description"] == "cold"
        assert row["base_directory"] == str(ext)
    with kalam_engine.connect(data_dir) as db:  # reopened: found through the manifest
        got = db.execute("SELECT id, v FROM app.m", user="alice").to_arrow().to_pylist()
        assert got == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
        assert db.execute("SELECT v FROM app.s").to_arrow()["v"].to_pylist() == ["x"]
        assert db.execute("SELECT id FROM app.m", user="bob").row_count == 0
    with kalam_engine.connect(data_dir, read_only=True) as ro:
        assert ro.execute("SELECT id FROM app.m", user="alice").row_count == 3
        assert ro.execute("SHOW STORAGES").row_count == 2


def test_relative_base_is_inside_the_data_directory(data_dir: Path) -> None:
    with kalam_engine.connect(data_dir) as db:
        db.execute("CREATE STORAGE rel TYPE 'filesystem' BASE_DIRECTORY 'archive'")
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE SHARED TABLE app.s (id INT PRIMARY KEY) WITH (STORAGE_ID='rel')")
        db.execute("INSERT INTO app.s VALUES (1)")
        db.execute("STORAGE FLUSH TABLE app.s")
        assert parquet_under(data_dir) == ["archive/app/s/batch-0.parquet"]
        manifest = db.execute("SELECT manifest_json FROM system.manifest").to_arrow()
        assert '"path": "archive/app/s/batch-0.parquet"' in manifest[0][0].as_py()
    moved = data_dir.parent / "moved"
    shutil.move(data_dir, moved)  # a relative base moves with its data directory
    with kalam_engine.connect(moved) as db:
        assert db.execute("SELECT id FROM app.s").to_arrow()["id"].to_pylist() == [1]


def test_drop_storage_is_refused_while_a_table_uses_it(data_dir: Path, ext: Path) -> None:
    with kalam_engine.connect(data_dir) as db:
        setup_archive(db, ext)
        with pytest.raises(ConstraintError, match=r"app\.m, app\.s"):
            db.execute("DROP STORAGE archive")
        assert storage_ids(db) == ["archive", "local"]
        db.execute("DROP TABLE app.m")
        db.execute("DROP TABLE app.s")
        assert "dropped" in db.execute("DROP STORAGE archive").message
        assert storage_ids(db) == ["local"]
        assert "does not exist" in db.execute("DROP STORAGE IF EXISTS archive").message
        with pytest.raises(InvalidParameterError, match="does not exist"):
            db.execute("DROP STORAGE archive")
        with pytest.raises(PermissionDeniedError):
            db.execute("DROP STORAGE local")
        with pytest.raises(InvalidParameterError, match="Storage 'archive' does not exist"):
            db.execute("CREATE USER TABLE app.n (id INT PRIMARY KEY) "
                       "WITH (STORAGE_ID='archive')")
        # the directory may be used again by a new storage once the old one is dropped
        db.execute(f"CREATE STORAGE again TYPE filesystem PATH '{ext}'")
        assert storage_ids(db) == ["again", "local"]


def test_only_dba_and_system_manage_and_check_storages(data_dir: Path, ext: Path) -> None:
    with kalam_engine.connect(data_dir) as db:
        for user, role in (("uma", "user"), ("sam", "service"), ("dee", "dba")):
            grant(db, user, role)
        for user in ("uma", "sam"):
            with pytest.raises(PermissionDeniedError):
                db.execute(f"CREATE STORAGE s1 TYPE filesystem PATH '{ext}'", user=user)
            with pytest.raises(PermissionDeniedError):
                db.execute("STORAGE CHECK local", user=user)
            with pytest.raises(PermissionDeniedError):
                db.execute("SELECT * FROM system.manifest", user=user)
        assert not ext.exists() and storage_ids(db) == ["local"]
        db.execute(f"CREATE STORAGE s1 TYPE filesystem PATH '{ext}'", user="dee")
        with pytest.raises(PermissionDeniedError):
            db.execute("DROP STORAGE s1", user="sam")
        db.execute("DROP STORAGE s1", user="dee")


@pytest.mark.parametrize(("shared", "user"), [
    ("../{namespace}/{tableName}", None),
    ("/abs/{namespace}/{tableName}", None),
    ("{namespace}{tableName}", None),
    ("{namespace}/{tableName}/..", None),
    ("{namespace}/./{tableName}", None),
    ("{namespace}//{tableName}", None),
    ("{namespace}/.hidden/{tableName}", None),
    ("{namespace}\\{tableName}", None),
    ("{namespace}/{tableName}/{userId}", "{namespace}/{tableName}/{userId}/x"),
    ("{namespace}/{nope}/{tableName}", None),
    ("{namespace}/{tableName}/{namespace}", None),
    ("{tableName}", None),
    ("{namespace}/t a/{tableName}", None),
    ("{namespace}/{tableName}", "{namespace}/{tableName}"),
    ("{namespace}/{tableName}", "{namespace}/{tableName}/x"),
    ("{namespace}/{tableName}", "{namespace}/{userId}"),
    ("{namespace}/{tableName}", "{namespace}/{tableName}/{userId}:x"),
])
def test_bad_templates_are_refused_and_change_nothing(data_dir: Path, ext: Path,
                                                      shared: str, user: str | None) -> None:
    with kalam_engine.connect(data_dir) as db:
        user_part = f" USER_TABLES_TEMPLATE '{user}'" if user else ""
        with pytest.raises(InvalidParameterError):
            db.execute(f"CREATE STORAGE bad TYPE filesystem PATH '{ext}' "
                       f"SHARED_TABLES_TEMPLATE '{shared}'{user_part}")
        assert storage_ids(db) == ["local"]
        assert not ext.exists()


def test_legacy_placeholder_spellings_are_normalised(data_dir: Path, ext: Path) -> None:
    with kalam_engine.connect(data_dir) as db:
        db.execute(f"CREATE STORAGE s TYPE filesystem PATH '{ext}' "
                   "SHARED_TABLES_TEMPLATE '{namespace_id}/{table_name}' "
                   "USER_TABLES_TEMPLATE '{namespace_id}/{table_name}/{user_id}'")
        row = db.execute("SELECT * FROM system.storages WHERE storage_id = 's'") \
            .to_arrow().to_pylist()[0]
        assert row["shared_tables_template"] == "{namespace}/{tableName}"
        assert row["user_tables_template"] == "{namespace}/{tableName}/{userId}"


def test_bad_base_directories_are_refused(data_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    kalam_engine.connect(other).close()  # another data directory
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("someone else's file")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with kalam_engine.connect(data_dir) as db:
        db.execute(f"CREATE STORAGE first TYPE filesystem PATH '{tmp_path / 'first'}'")
        bad = [str(data_dir), str(tmp_path), str(data_dir / "storage" / "x"),
               "storage", "storage/x", "quarantine", "../outside", ".", "",
               str(other), str(other / "sub"), str(busy), str(a_file),
               str(tmp_path / "first"), str(tmp_path / "first" / "inner")]
        for base in bad:
            with pytest.raises(InvalidParameterError):
                db.execute(f"CREATE STORAGE s TYPE filesystem PATH '{base}'")
        assert storage_ids(db) == ["first", "local"]
        assert not (data_dir / "storage" / "x").exists()
        assert not (tmp_path / "outside").exists()
        link = tmp_path / "link"
        link.symlink_to(data_dir / "storage", target_is_directory=True)
        with pytest.raises(InvalidParameterError):  # links are resolved first
            db.execute(f"CREATE STORAGE s TYPE filesystem PATH '{link}'")
        with pytest.raises(InvalidParameterError):
            db.execute("CREATE STORAGE s TYPE filesystem")  # no PATH
        with pytest.raises(InvalidParameterError):
            db.execute(f"CREATE STORAGE s TYPE filesystem PATH '{tmp_path}/a' "
                       f"BASE_DIRECTORY '{tmp_path}/b'")
        with pytest.raises(UnsupportedError):
            db.execute("CREATE STORAGE s TYPE s3 BUCKET 'b' REGION 'r'")
        with pytest.raises(AlreadyExistsError):
            db.execute(f"CREATE STORAGE first TYPE filesystem PATH '{tmp_path}/c'")
        assert "already exists" in db.execute(
            f"CREATE STORAGE IF NOT EXISTS first TYPE filesystem PATH '{tmp_path}/c'").message
        assert storage_ids(db) == ["first", "local"]


def test_storage_ids_and_syntax(data_dir: Path, tmp_path: Path) -> None:
    with kalam_engine.connect(data_dir) as db:
        db.execute(f"CREATE STORAGE my-store_2 TYPE filesystem PATH '{tmp_path / 'a'}'")
        db.execute(f"CREATE STORAGE 'quoted' TYPE 'filesystem' PATH '{tmp_path / 'b'}' "
                   "CONFIG '{\"k\": 1}'")
        assert storage_ids(db) == ["local", "my-store_2", "quoted"]
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE SHARED TABLE app.s (id INT PRIMARY KEY) "
                   "WITH (STORAGE_ID='my-store_2')")
        for sql, error in [
            (f"CREATE STORAGE 'a/b' TYPE filesystem PATH '{tmp_path / 'c'}'",
             InvalidParameterError),
            ("CREATE STORAGE s TYPE filesystem PATH 'x' PATH 'y'", InvalidSqlError),
            ("CREATE STORAGE s TYPE filesystem PATH x", InvalidSqlError),
            ("CREATE STORAGE s TYPE filesystem WHATEVER 'x'", InvalidSqlError),
            ("CREATE STORAGE s TYPE tape PATH 'x'", InvalidParameterError),
            ("CREATE STORAGE s TYPE filesystem PATH 'x' CONFIG 'not json'",
             InvalidParameterError),
            ("CREATE STORAGE s TYPE filesystem PATH 'x' CREDENTIALS '{}'",
             InvalidParameterError),
            ("STORAGE CHECK nope", InvalidParameterError),
            ("STORAGE CHECK local EXTRA", InvalidSqlError),
            ("CREATE USER TABLE app.u (id INT PRIMARY KEY) WITH (STORAGE_ID='a/b')",
             InvalidParameterError),
        ]:
            with pytest.raises(error):
                db.execute(sql)
        assert storage_ids(db) == ["local", "my-store_2", "quoted"]


def test_storage_check_writes_reads_and_deletes_a_probe(data_dir: Path, ext: Path) -> None:
    with kalam_engine.connect(data_dir) as db:
        db.execute(f"CREATE STORAGE s TYPE filesystem PATH '{ext}'")
        before = files_under(ext)
        res = db.execute("STORAGE CHECK s")
        row = res.to_arrow().to_pylist()[0]
        assert row["status"] == "healthy" and row["error"] is None
        assert row["readable"] and row["writable"] and row["listable"] and row["deletable"]
        assert files_under(ext) == before  # the probe is gone
        extended = db.execute("STORAGE CHECK s EXTENDED").to_arrow()
        assert {"total_bytes", "available_bytes", "segment_count", "base_directory"} \
            <= set(extended.column_names)
        assert extended["total_bytes"][0].as_py() > 0
        assert db.execute("STORAGE CHECK local").to_arrow()["status"][0].as_py() == "healthy"
        shutil.rmtree(ext)
        row = db.execute("STORAGE CHECK s").to_arrow().to_pylist()[0]
        assert row["status"] == "unhealthy" and "does not exist" in row["error"]
    with kalam_engine.connect(":memory:") as mem:
        row = mem.execute("STORAGE CHECK local").to_arrow().to_pylist()[0]
        assert row["status"] == "unhealthy" and ":memory:" in row["error"]


def test_system_manifest_lists_each_partition_with_segments(data_dir: Path, ext: Path) -> None:
    with kalam_engine.connect(data_dir) as db:
        setup_archive(db, ext)
        assert db.execute("SELECT * FROM system.manifest").to_arrow().column_names \
            == MANIFEST_COLUMNS
        db.execute("INSERT INTO app.m VALUES (1, 'a')", user="alice")
        db.execute("INSERT INTO app.m VALUES (1, 'b')", user="bob")
        db.execute("INSERT INTO app.s VALUES (1, 'x')")
        db.execute("STORAGE FLUSH ALL IN app")
        db.execute("INSERT INTO app.m VALUES (2, 'c')", user="bob")  # bob: pending again
        rows = db.execute("SELECT * FROM system.manifest ORDER BY cache_key").to_arrow()
        got = [(r["cache_key"], r["namespace_id"], r["table_name"], r["scope"], r["sync_state"])
               for r in rows.to_pylist()]
        assert got == [("app:m:alice", "app", "m", "alice", "in_sync"),
                       ("app:m:bob", "app", "m", "bob", "pending_write"),
                       ("app:s:shared", "app", "s", "shared", "in_sync")]
        import json
        body = json.loads(rows["manifest_json"][0].as_py())
        assert body["table_id"] == "app:m" and body["user_id"] == "alice"
        assert [s["row_count"] for s in body["segments"]] == [1]
        assert body["segments"][0]["path"].startswith(str(ext))


def test_two_data_directories_cannot_share_a_storage_directory(tmp_path: Path,
                                                              ext: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    with kalam_engine.connect(a) as db_a:
        setup_archive(db_a, ext)
        db_a.execute("INSERT INTO app.s VALUES (1, 'x')")
        db_a.execute("STORAGE FLUSH TABLE app.s")
        with kalam_engine.connect(b) as db_b:  # held by a, and not empty
            with pytest.raises(KalamError):
                db_b.execute(f"CREATE STORAGE archive TYPE filesystem PATH '{ext}'")
            assert storage_ids(db_b) == ["local"]
    with kalam_engine.connect(b) as db_b, \
            pytest.raises(InvalidParameterError, match="another database"):
        db_b.execute(f"CREATE STORAGE archive TYPE filesystem PATH '{ext}'")
    shutil.copytree(a, tmp_path / "copy")  # a copy shares the absolute base with a
    with kalam_engine.connect(a), pytest.raises(DataDirectoryLockedError, match=str(ext)):
        kalam_engine.connect(tmp_path / "copy")
    with kalam_engine.connect(a) as db_a:  # the failed open left nothing locked
        assert db_a.execute("SELECT v FROM app.s").to_arrow()["v"].to_pylist() == ["x"]


def test_a_marker_of_another_storage_is_refused_on_open(tmp_path: Path, ext: Path) -> None:
    data = tmp_path / "data"
    with kalam_engine.connect(data) as db:
        setup_archive(db, ext)
    (ext / ".kalam-storage").write_text('{"storage_id": "archive", "token": "someone else"}')
    with pytest.raises(CorruptDataError, match="belongs to storage"):
        kalam_engine.connect(data)


def test_recovery_covers_custom_storage_directories(data_dir: Path, ext: Path) -> None:
    with kalam_engine.connect(data_dir) as db:
        setup_archive(db, ext)
        db.execute("INSERT INTO app.s VALUES (1, 'x')")
        db.execute("STORAGE FLUSH TABLE app.s")
    stray = ext / "shared" / "app" / "s" / "batch-7.parquet"
    pq.write_table(pa.table({"id": [9]}), stray)
    leftover = ext / "shared" / "app" / "s" / "batch-8.parquet.tmp"
    leftover.write_bytes(b"half a file")
    with pytest.raises(CorruptDataError, match=r"batch-7\.parquet"):
        kalam_engine.connect(data_dir)
    report = recover(data_dir)
    assert report.moved == [stray.as_posix()]
    assert report.quarantine is not None
    assert (report.quarantine / "external" / stray.as_posix().lstrip("/")).is_file()
    assert not stray.exists() and not leftover.exists()
    with kalam_engine.connect(data_dir) as db:
        assert db.execute("SELECT v FROM app.s").to_arrow()["v"].to_pylist() == ["x"]


def test_missing_or_changed_segment_in_custom_storage_is_detected(data_dir: Path,
                                                                   ext: Path) -> None:
    with kalam_engine.connect(data_dir) as db:
        setup_archive(db, ext)
        db.execute("INSERT INTO app.s VALUES (1, 'x')")
        db.execute("STORAGE FLUSH TABLE app.s")
    segment = ext / "shared" / "app" / "s" / "batch-0.parquet"
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    with kalam_engine.connect(data_dir) as db, pytest.raises(CorruptDataError):
        db.execute("SELECT * FROM app.s")
    report = recover(data_dir, drop_damaged=True)
    assert report.forgotten == [segment.as_posix()]
    with kalam_engine.connect(data_dir) as db:
        assert db.execute("SELECT * FROM app.s").row_count == 0


def test_a_link_out_of_the_base_stops_the_flush(data_dir: Path, ext: Path,
                                                tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with kalam_engine.connect(data_dir) as db:
        setup_archive(db, ext)
        (ext / "shared").symlink_to(outside, target_is_directory=True)
        db.execute("INSERT INTO app.s VALUES (1, 'x')")
        with pytest.raises(StorageError, match="outside"):
            db.execute("STORAGE FLUSH TABLE app.s")
        assert files_under(outside) == []
        assert db.execute("SELECT v FROM app.s").to_arrow()["v"].to_pylist() == ["x"]
        assert db.data_sizes()["hot_rows"] == 1


def test_compact_of_a_table_with_only_hot_rows_returns_a_completed_job(data_dir: Path) -> None:
    with kalam_engine.connect(data_dir) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.m (id INT PRIMARY KEY)")
        db.execute("INSERT INTO app.m VALUES (1)", user="alice")
        res = db.execute("STORAGE COMPACT TABLE app.m")
        assert "Job ID: CO-" in res.message
        job_id = res.message.rsplit("Job ID: ", 1)[1]
        job = db.execute(f"SELECT job_type, status FROM system.jobs WHERE job_id = '{job_id}'")
        assert job.to_arrow().to_pylist() == [{"job_type": "compact", "status": "completed"}]
        assert db.execute("SELECT id FROM app.m", user="alice").row_count == 1


def test_memory_database_may_name_absolute_storages_only(tmp_path: Path) -> None:
    with kalam_engine.connect(":memory:") as db:
        with pytest.raises(InvalidParameterError, match="relative"):
            db.execute("CREATE STORAGE s TYPE filesystem PATH 'rel'")
        db.execute(f"CREATE STORAGE s TYPE filesystem PATH '{tmp_path / 's'}'")
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE SHARED TABLE app.t (id INT PRIMARY KEY) WITH (STORAGE_ID='s')")
        db.execute("INSERT INTO app.t VALUES (1)")
        assert ":memory:" in db.execute("STORAGE FLUSH TABLE app.t").message
        assert os.listdir(tmp_path / "s") != []  # marker and lock only
        assert parquet_under(tmp_path / "s") == []


def test_alter_storage_is_unsupported(data_dir: Path) -> None:
    with kalam_engine.connect(data_dir) as db, pytest.raises(UnsupportedError):
        db.execute("ALTER STORAGE local SET NAME 'x'")
