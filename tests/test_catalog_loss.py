"""A missing, empty, truncated or foreign kalam.sqlite beside existing segments is refused with a
coded error and nothing is deleted; the recovery command moves what the catalog cannot explain
into quarantine, deleting nothing."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import kalam_engine
from kalam_engine.model.errors import CorruptDataError, KalamError
from kalam_engine.storage.dir_lock import LOCK_FILE

CATALOG = "kalam.sqlite"


def make_db(path: Path) -> None:
    with kalam_engine.connect(path) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, body TEXT)")
        for user in ("alice", "bob"):
            db.execute("INSERT INTO app.t VALUES (1, 'a'), (2, 'b')", user=user)
            db.execute("STORAGE FLUSH TABLE app.t")
            db.execute("INSERT INTO app.t VALUES (3, 'c')", user=user)
            db.execute("STORAGE FLUSH TABLE app.t")


def snapshot(path: Path) -> dict[str, str]:
    """Every file of the directory (except the catalog's and the directory lock, which holds
    no data) with a hash of its bytes."""
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()
            and not p.name.startswith(CATALOG) and p.name != LOCK_FILE}


def remove_catalog(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (path / (CATALOG + suffix)).unlink(missing_ok=True)


def refused(path: Path) -> CorruptDataError:
    before = snapshot(path)
    with pytest.raises(CorruptDataError) as exc:
        kalam_engine.connect(path)
    assert snapshot(path) == before  # no file deleted, moved or changed
    assert exc.value.code == "INTERNAL_ERROR"
    assert f"python -m kalam_engine.recover {path}" in str(exc.value)
    return exc.value


def test_missing_catalog_with_segments_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    make_db(path)
    remove_catalog(path)
    error = refused(path)
    assert "4 segment file(s)" in str(error) and str(path / "storage") in str(error)
    assert not (path / CATALOG).exists()  # not replaced by a new, empty catalog


def test_empty_catalog_with_segments_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    make_db(path)
    remove_catalog(path)
    (path / CATALOG).write_bytes(b"")
    assert "4 segment file(s)" in str(refused(path))


def test_truncated_catalog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    make_db(path)
    catalog = path / CATALOG
    data = catalog.read_bytes()
    catalog.write_bytes(data[: len(data) // 2])
    assert "truncated" in str(refused(path))
    catalog.write_bytes(data[:50])  # shorter than SQLite's header
    refused(path)


def test_catalog_that_is_not_sqlite_is_a_coded_error(tmp_path: Path) -> None:
    path = tmp_path / "data"
    make_db(path)
    (path / CATALOG).write_bytes(b"this is not a database" * 300)
    assert "not a SQLite database" in str(refused(path))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / CATALOG).write_bytes(b"\0" * 8192)
    with pytest.raises(CorruptDataError):  # even with no segments: never overwritten
        kalam_engine.connect(empty)
    assert (empty / CATALOG).read_bytes() == b"\0" * 8192


def test_a_catalog_that_does_not_name_the_segments_is_refused(tmp_path: Path) -> None:
    """An older copy of kalam.sqlite (here: a fresh one) beside newer segments."""
    path = tmp_path / "data"
    make_db(path)
    remove_catalog(path)
    kalam_engine.connect(tmp_path / "other").close()
    shutil.copy(tmp_path / "other" / CATALOG, path / CATALOG)
    error = refused(path)
    assert "4 segment file(s) that the catalog" in str(error)


def test_recover_moves_segments_of_a_lost_catalog_to_quarantine(tmp_path: Path) -> None:
    from kalam_engine.recover import recover

    path = tmp_path / "data"
    make_db(path)
    remove_catalog(path)
    before = snapshot(path)
    dry = recover(path, dry_run=True)
    assert len(dry.moved) == 4 and snapshot(path) == before
    report = recover(path)
    assert report.catalog == "missing" and len(report.moved) == 4
    assert report.quarantine is not None
    for relative in before:  # every file kept, byte for byte, under quarantine/<time>/
        moved = report.quarantine / relative
        assert hashlib.sha256(moved.read_bytes()).hexdigest() == before[relative]
    rows = pq.read_table(report.quarantine / "storage/app/t/alice/batch-0.parquet")
    assert sorted(rows["id"].to_pylist()) == [1, 2]
    with kalam_engine.connect(path) as db:  # opens, empty
        assert db.execute("SHOW TABLES").to_arrow().num_rows == 0


def test_recover_moves_a_damaged_catalog_and_its_segments(tmp_path: Path) -> None:
    path = tmp_path / "data"
    make_db(path)
    catalog = path / CATALOG
    damaged = catalog.read_bytes()[:3000]
    catalog.write_bytes(damaged)
    out = subprocess.run([sys.executable, "-m", "kalam_engine.recover", str(path)],
                         capture_output=True, text=True, check=True)
    assert "catalog: truncated" in out.stdout
    quarantined = sorted(p.relative_to(path).as_posix()
                         for p in (path / "quarantine").rglob("*") if p.is_file())
    assert len(quarantined) == 5
    assert any(q.endswith("/" + CATALOG) for q in quarantined)
    assert next((path / "quarantine").rglob(CATALOG)).read_bytes() == damaged
    with kalam_engine.connect(path) as db:
        db.execute("CREATE NAMESPACE app")


def test_recover_with_a_sound_catalog_quarantines_only_unexplained_files(tmp_path: Path) -> None:
    path = tmp_path / "data"
    make_db(path)
    stray = path / "storage/app/t/carol/batch-0.parquet"
    stray.parent.mkdir(parents=True)
    shutil.copy(path / "storage/app/t/alice/batch-0.parquet", stray)
    with pytest.raises(CorruptDataError, match=r"carol/batch-0\.parquet"):
        kalam_engine.connect(path)
    out = subprocess.run([sys.executable, "-m", "kalam_engine.recover", str(path)],
                         capture_output=True, text=True, check=True)
    assert "storage/app/t/carol/batch-0.parquet" in out.stdout
    assert not stray.exists()
    with kalam_engine.connect(path) as db:
        for user in ("alice", "bob"):
            got = db.execute("SELECT id FROM app.t ORDER BY id", user=user).to_arrow()
            assert got["id"].to_pylist() == [1, 2, 3]
        assert db.execute("SELECT id FROM app.t", user="carol").to_arrow().num_rows == 0


def test_files_the_catalog_records_as_unfinished_are_removed(tmp_path: Path) -> None:
    """A flush cut short after its file was written: the catalog records the file as a pending
    write, so opening deletes it (and the rows stay in the hot log, read once)."""
    path = tmp_path / "data"
    make_db(path)
    with kalam_engine.connect(path) as db:
        db.execute("INSERT INTO app.t VALUES (4, 'd')", user="alice")
        store = db.storage.existing_store(kalam_engine.model.context.TableId("app", "t"))
        hot = store.existing_partition("alice").hot_versions(store.schema)
        written = db.storage.flusher._write(store, "alice", hot)
    assert (path / written.path).exists()
    with kalam_engine.connect(path) as db:
        assert not (path / written.path).exists()
        got = db.execute("SELECT id FROM app.t ORDER BY id", user="alice").to_arrow()
        assert got["id"].to_pylist() == [1, 2, 3, 4]
        assert db._db.query("SELECT COUNT(*) FROM pending_files") == [(0,)]


def test_recover_rejects_a_path_that_is_not_a_directory(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "kalam_engine.recover", str(tmp_path / "no")],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "not a directory" in out.stderr
    assert issubclass(CorruptDataError, KalamError)


def test_damaged_pages_inside_the_catalog_are_a_coded_error(tmp_path: Path) -> None:
    path = tmp_path / "data"
    make_db(path)
    catalog = path / CATALOG
    data = bytearray(catalog.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xa5" * (len(data) - page)  # every page but the first (the schema)
    catalog.write_bytes(bytes(data))
    error = refused(path)
    assert "damaged" in str(error)


def test_recover_refuses_a_directory_an_engine_holds(tmp_path: Path) -> None:
    from kalam_engine.model.errors import DataDirectoryLockedError
    from kalam_engine.recover import recover

    path = tmp_path / "data"
    with kalam_engine.connect(path) as db:
        db.execute("CREATE NAMESPACE app")
        before = snapshot(path)
        with pytest.raises(DataDirectoryLockedError):
            recover(path)
        assert snapshot(path) == before
    assert recover(path).moved == []
