"""One writing engine per data directory (issue 11, item 2) and connect() path errors (item 6).

Two engines writing one directory lose acknowledged data (a flush in one deletes the other's hot
rows, both accept one primary key, a delete comes back). The directory is locked with flock
before anything in it is read, so the second engine is refused, in another process or in this
one; the OS releases the lock when the holder closes or dies.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from writer_process import WriterProcess

import kalam_engine
from kalam_engine.model.errors import (
    CorruptDataError,
    DataDirectoryLockedError,
    InvalidParameterError,
    KalamError,
    StorageError,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock and SIGKILL")

TABLE = "CREATE USER TABLE app.m (id BIGINT PRIMARY KEY, body TEXT)"


def rows_of(db: kalam_engine.Engine, user: str) -> dict[int, str]:
    table = db.execute("SELECT id, body FROM app.m", user=user).to_arrow()
    return dict(zip(table["id"].to_pylist(), table["body"].to_pylist(), strict=True))


def setup_writer(w: WriterProcess) -> None:
    w.sql("CREATE NAMESPACE app")
    w.sql(TABLE)


def lock_is_free(directory: Path) -> bool:
    fd = os.open(directory / "kalam.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


# --- another process holds the directory


def test_second_process_is_refused_naming_the_holder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with WriterProcess(data) as w:
        setup_writer(w)
        w.sql("INSERT INTO app.m (id, body) VALUES (1, 'a')", user="alice")
        with pytest.raises(DataDirectoryLockedError) as err:
            kalam_engine.connect(data)
        text = str(err.value)
        assert f"pid {w.pid}" in text or f"process {w.pid}" in text
        assert str(data) in text
        assert "read_only=True" in (err.value.hint or "")
        assert "kalam serve" in (err.value.hint or "")
        assert err.value.code == "INTERNAL_ERROR"
        # the refused open changed nothing: the holder goes on as before
        w.sql("INSERT INTO app.m (id, body) VALUES (2, 'b')", user="alice")
        assert w.sql("SELECT id FROM app.m ORDER BY id", user="alice") == [{"id": 1}, {"id": 2}]


def test_refused_open_touches_nothing_before_the_lock(tmp_path: Path) -> None:
    """Recovery deletes files no manifest names, such as the holder's segment being written:
    a refused open must not get that far."""
    data = tmp_path / "data"
    with WriterProcess(data) as w:
        setup_writer(w)
        w.sql("INSERT INTO app.m (id, body) VALUES (1, 'a')", user="alice")
        in_flight = data / "storage" / "app" / "m" / "alice" / "batch-0.parquet.tmp"
        in_flight.parent.mkdir(parents=True)
        in_flight.write_bytes(b"a segment the holder is writing")
        with pytest.raises(DataDirectoryLockedError):
            kalam_engine.connect(data)
        assert in_flight.read_bytes() == b"a segment the holder is writing"
        in_flight.unlink()


def test_lost_flush_duplicate_key_and_resurrected_delete_are_impossible(tmp_path: Path) -> None:
    """The three losses of two writers: B's hot rows deleted by A's flush, one primary key in
    both, B's delete undone by A's flush. B is refused, so A's state is the only one."""
    data = tmp_path / "data"
    with WriterProcess(data) as a:
        setup_writer(a)
        a.sql("INSERT INTO app.m (id, body) VALUES (1, 'a1'), (2, 'a2')", user="alice")
        with pytest.raises(DataDirectoryLockedError):
            b = kalam_engine.connect(data)
            # what B would do if it could open (it cannot): a row, a key A has, a delete
            b.execute("INSERT INTO app.m (id, body) VALUES (3, 'b3')", user="alice")
            b.execute("INSERT INTO app.m (id, body) VALUES (1, 'b1')", user="alice")
            b.execute("DELETE FROM app.m WHERE id = 2", user="alice")
        a.sql("STORAGE FLUSH TABLE app.m")
        a.sql("INSERT INTO app.m (id, body) VALUES (4, 'a4')", user="alice")
    with kalam_engine.connect(data) as db:
        assert rows_of(db, "alice") == {1: "a1", 2: "a2", 4: "a4"}


def test_sigkill_releases_the_lock_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    w = WriterProcess(data)
    try:
        setup_writer(w)
        expected = {}
        for i in range(1, 13):
            w.sql(f"INSERT INTO app.m (id, body) VALUES ({i}, 'v{i}')", user="bob")
            expected[i] = f"v{i}"
            if i % 5 == 0:
                w.sql("STORAGE FLUSH TABLE app.m")
        w.sql("UPDATE app.m SET body = 'changed' WHERE id = 3", user="bob")
        expected[3] = "changed"
        w.sql("DELETE FROM app.m WHERE id = 7", user="bob")
        del expected[7]
        with pytest.raises(DataDirectoryLockedError):
            kalam_engine.connect(data)
        w.kill()
    finally:
        w.close()
    with kalam_engine.connect(data) as db:
        assert rows_of(db, "bob") == expected


# --- the same process


def test_second_engine_in_the_same_process_is_refused_until_close(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = kalam_engine.connect(data)
    first.execute("CREATE NAMESPACE app")
    with pytest.raises(DataDirectoryLockedError) as err:
        kalam_engine.connect(data)
    assert f"this process (pid {os.getpid()})" in str(err.value)
    assert "close" in (err.value.hint or "")
    with pytest.raises(DataDirectoryLockedError):
        kalam_engine.Engine(str(data))
    assert not lock_is_free(data)
    first.close()
    assert lock_is_free(data)
    with kalam_engine.connect(data) as second:
        assert second.namespace_exists("app")
    assert lock_is_free(data)


def test_lock_file_names_the_holder_and_is_cleared_on_close(tmp_path: Path) -> None:
    import json

    data = tmp_path / "data"
    db = kalam_engine.connect(data)
    record = json.loads((data / "kalam.lock").read_text())
    assert record["pid"] == os.getpid()
    assert record["host"] and record["started_at"] > 0
    db.close()
    db.close()  # idempotent
    assert (data / "kalam.lock").read_text() == ""


def test_memory_databases_take_no_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with kalam_engine.connect(":memory:") as a, kalam_engine.connect(":memory:") as b:
        a.execute("CREATE NAMESPACE app")
        assert not b.namespace_exists("app")
    assert list(tmp_path.iterdir()) == []


# --- connect() paths (item 6)


def test_empty_path_is_refused_and_opens_nothing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for path in ("", "   "):
        with pytest.raises(InvalidParameterError) as err:
            kalam_engine.connect(path)
        assert ":memory:" in (err.value.hint or "")
    assert list(tmp_path.iterdir()) == []


def test_a_regular_file_is_not_a_data_directory(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    for options in ({}, {"read_only": True}):
        with pytest.raises(InvalidParameterError) as err:
            kalam_engine.connect(target, **options)
        assert "is a file" in str(err.value)
    with pytest.raises(InvalidParameterError):
        kalam_engine.connect(target / "data")  # a file in the middle of the path
    assert target.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.skipif(sys.platform != "linux", reason="uses /sys, which no one may write")
def test_a_directory_we_may_not_write_gives_a_coded_error() -> None:
    before = open_fds()
    for path in ("/sys", "/sys/kalam-not-allowed"):
        with pytest.raises(StorageError) as err:
            kalam_engine.connect(path)
        assert err.value.code == "INTERNAL_ERROR" and err.value.hint
    assert open_fds() == before


def test_a_damaged_catalog_leaves_nothing_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "kalam.sqlite").write_bytes(b"not a database at all" * 200)
    before = open_fds()
    with pytest.raises(CorruptDataError) as err:
        kalam_engine.connect(data)
    assert err.value.hint
    assert open_fds() == before
    assert lock_is_free(data)


def test_bad_path_types_and_options_are_coded(tmp_path: Path) -> None:
    for bad in (5, None, b"/tmp/x"):
        with pytest.raises(InvalidParameterError):
            kalam_engine.connect(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        kalam_engine.connect(tmp_path / "data", read_only="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        kalam_engine.connect(":memory:", read_only=True)
    with pytest.raises(KalamError):
        kalam_engine.connect(tmp_path / "data", no_such_option=1)
    assert not (tmp_path / "data").exists()


# --- the notebook layer


def test_kalam_magic_reports_a_held_directory_as_a_usage_error(shell: Any,
                                                                tmp_path: Path) -> None:
    from IPython.core.error import UsageError

    magics = shell.magics_manager.registry["KalamMagics"]
    data = tmp_path / "data"
    try:
        with WriterProcess(data) as w:
            setup_writer(w)
            w.sql("INSERT INTO app.m (id, body) VALUES (1, 'a')", user="alice")
            with pytest.raises(UsageError) as err:
                shell.run_line_magic("kalam", f"--connect {data}")
            assert f"{w.pid}" in str(err.value) and "read_only=True" in str(err.value)
            assert not magics.is_open
            # the second notebook reads what the first writes, and cannot write
            shell.run_line_magic("kalam", f"--connect {data} --read-only")
            frame = shell.run_line_magic("kalam", "--user alice SELECT id FROM app.m")
            assert list(frame["id"]) == [1]
            w.sql("INSERT INTO app.m (id, body) VALUES (2, 'b')", user="alice")
            frame = shell.run_line_magic("kalam", "--user alice SELECT id FROM app.m")
            assert list(frame["id"]) == [1, 2]
            with pytest.raises(UsageError) as err:
                shell.run_line_magic("kalam", "--user alice DELETE FROM app.m WHERE id = 1")
            assert "PERMISSION_DENIED" in str(err.value) and "read_only" in str(err.value)
            magics.connect(":memory:")
        shell.run_line_magic("kalam", f"--connect {data}")  # the holder exited
        frame = shell.run_line_magic("kalam", "--user alice SELECT id FROM app.m")
        assert list(frame["id"]) == [1, 2]
        with pytest.raises(DataDirectoryLockedError):  # the notebook's engine holds it now
            kalam_engine.connect(data)
    finally:
        magics.connect(":memory:")
    assert lock_is_free(data)
