"""Issue 11 item 6: a write the disk refuses (full, read-only) raises a coded StorageError with a
hint, leaves memory exactly as SQLite committed it, and the next statement works.

The full disk is real: SQLite's own page limit on the real kalam.sqlite (everywhere), and a
small tmpfs (where this process may mount one). The read-only storage directory is a real
read-only mount (root) or a chmod (other users)."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import kalam_engine
from kalam_engine import StorageError
from kalam_engine.storage.sqlite_db import SqliteDatabase

ROW = random.Random(11).randbytes(1500).hex()  # 3000 characters that do not compress


def make_engine(path: Path) -> kalam_engine.Engine:
    db = kalam_engine.connect(path)
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, body TEXT)")
    return db


def ids(db: kalam_engine.Engine, user: str = "alice") -> list[int]:
    return db.execute("SELECT id FROM app.t ORDER BY id", user=user).to_arrow()["id"] \
        .to_pylist()


def fill(db: kalam_engine.Engine, first: int = 0) -> tuple[list[int], StorageError]:
    """Insert rows until the disk refuses one; the ids written and the error."""
    written = []
    for i in range(first, first + 100_000):
        try:
            db.execute("INSERT INTO app.t (id, body) VALUES ($1, $2)", user="alice",
                       params=[i, ROW])
        except StorageError as exc:
            return written, exc
        written.append(i)
    raise AssertionError("the disk never filled up")


def test_sqlite_full_refuses_the_write_and_changes_nothing(tmp_path: Path) -> None:
    db = make_engine(tmp_path / "d")
    pages = db._db.query("PRAGMA page_count")[0][0]
    db._db.query(f"PRAGMA max_page_count = {pages + 30}")
    written, error = fill(db)
    assert written and error.code == "INTERNAL_ERROR"
    assert "full" in error.message and "nothing was changed" in error.message and error.hint
    assert ids(db) == written  # memory holds exactly what SQLite committed
    # UPDATE and DELETE write new versions too: refused, nothing changes
    for sql in ("UPDATE app.t SET body = $1 WHERE id >= 0", "DELETE FROM app.t WHERE id >= 0"):
        with pytest.raises(StorageError):
            db.execute(sql, user="alice", params=[ROW[::-1] * 3] if "$1" in sql else None)
        assert ids(db) == written
    assert {len(b) for b in db.execute("SELECT body FROM app.t", user="alice")
            .to_arrow()["body"].to_pylist()} == {len(ROW)}
    # reads still work, and once there is room the next write does too
    db._db.query("PRAGMA max_page_count = 1000000")
    db.execute("INSERT INTO app.t (id, body) VALUES (-1, 'after')", user="alice")
    db.close()
    with kalam_engine.connect(tmp_path / "d") as again:
        assert ids(again) == [-1, *written]


def test_read_only_database_refuses_the_write(tmp_path: Path) -> None:
    db = make_engine(tmp_path / "d")
    db.execute("INSERT INTO app.t (id, body) VALUES (1, 'a')", user="alice")
    db._db.query("PRAGMA query_only = ON")  # SQLite itself now refuses every write
    for sql in ("INSERT INTO app.t (id, body) VALUES (2, 'b')", "CREATE NAMESPACE other",
                "DELETE FROM app.t WHERE id = 1"):
        with pytest.raises(StorageError, match="read-only") as info:
            db.execute(sql, user="alice" if "app.t" in sql else None)
        assert info.value.code == "INTERNAL_ERROR" and info.value.hint
    assert ids(db) == [1]
    assert "other" not in [n for n, _, _ in db.all_namespaces()]
    db._db.query("PRAGMA query_only = OFF")
    db.execute("INSERT INTO app.t (id, body) VALUES (3, 'c')", user="alice")
    assert ids(db) == [1, 3]
    db.close()


def test_a_failed_commit_is_rolled_back_and_the_connection_stays_usable(
        tmp_path: Path) -> None:
    """A deferred foreign key fails only at COMMIT: the transaction must end (rolled back) and
    raise a KalamError, and the next transaction must start."""
    sdb = SqliteDatabase(tmp_path / "x.sqlite")
    sdb.query("PRAGMA foreign_keys = ON")
    sdb.query("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    sdb.query("CREATE TABLE child (pid INTEGER REFERENCES parent(id) "
              "DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(StorageError), sdb.transaction() as conn:
        conn.execute("INSERT INTO child VALUES (7)")
    assert not sdb.conn.in_transaction
    with sdb.transaction() as conn:
        conn.execute("INSERT INTO parent VALUES (7)")
        conn.execute("INSERT INTO child VALUES (7)")
    assert sdb.query("SELECT pid FROM child") == [(7,)]
    sdb.close()


# --- real file systems
@contextlib.contextmanager
def _mounted(path: Path, options: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_real_full_disk(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    with _mounted(mount, "size=2m"):
        db = make_engine(mount / "d")
        written, error = fill(db)
        assert "full" in error.message and error.hint
        assert ids(db) == written
        with pytest.raises(StorageError, match="full"):  # the catalog's or the segment's disk
            db.execute("STORAGE FLUSH TABLE app.t")
        assert ids(db) == written  # the rows stay hot; no partial segment file is left
        assert not [f for _, _, fs in os.walk(mount / "d" / "storage") for f in fs]
        db.close()
        with kalam_engine.connect(mount / "d") as again:
            assert ids(again) == written


def test_read_only_storage_directory(tmp_path: Path) -> None:
    data = tmp_path / "d"
    db = make_engine(data)
    db.execute("INSERT INTO app.t (id, body) VALUES (1, 'a'), (2, 'b')", user="alice")
    storage = data / "storage"
    storage.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        guard = _mounted(storage, "ro,size=1m")
    else:
        guard = contextlib.nullcontext()
        storage.chmod(0o555)
    try:
        with guard:
            with pytest.raises(StorageError) as info:
                db.execute("STORAGE FLUSH TABLE app.t")
            assert info.value.code == "INTERNAL_ERROR" and info.value.hint
            assert "segment file" in info.value.message
            assert ids(db) == [1, 2]
            db.execute("INSERT INTO app.t (id, body) VALUES (3, 'c')", user="alice")
    finally:
        storage.chmod(0o755)
    db.execute("STORAGE FLUSH TABLE app.t")
    assert ids(db) == [1, 2, 3]
    db.close()
