"""BACKUP DATABASE / RESTORE DATABASE and EXPORT USER DATA / SHOW EXPORT (issue 13, item 5)."""

from __future__ import annotations

import io
import json
import shutil
import threading
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import kalam_engine
from kalam_engine import (
    CorruptDataError,
    InvalidParameterError,
    InvalidSqlError,
    MissingFileError,
    PermissionDeniedError,
    ReadOnlyError,
    RetiredProviderError,
    TableId,
)
from kalam_engine.auth import passwords
from kalam_engine.model.errors import AlreadyExistsError, UnsupportedError
from kalam_engine.storage.backup import check_catalog
from kalam_engine.storage.segment_files import SegmentFiles


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_COST", 4)


def ids(db: kalam_engine.Engine, table: str, user: str | None = None) -> list:
    return db.execute(f"SELECT id FROM {table} ORDER BY id", user=user).to_arrow()["id"] \
        .to_pylist()


def fill(db: kalam_engine.Engine) -> None:
    """USER, SHARED and STREAM tables with cold rows, hot rows and tombstones."""
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT)")
    db.execute("CREATE SHARED TABLE app.rooms (id INT PRIMARY KEY, name TEXT)")
    db.execute("CREATE STREAM TABLE app.events (id INT PRIMARY KEY, body TEXT) "
               "WITH (TTL_SECONDS=3600)")
    for user in ("alice", "bob"):
        db.execute("INSERT INTO app.notes (id, body) VALUES (1, $1), (2, $1), (3, $1)",
                   user=user, params=[user])
        db.execute("INSERT INTO app.events (id, body) VALUES (1, $1)", user=user, params=[user])
    db.execute("INSERT INTO app.rooms (id, name) VALUES (1, 'a'), (2, 'b')")
    db.execute("STORAGE FLUSH ALL IN app")
    db.execute("DELETE FROM app.notes WHERE id = 2", user="alice")  # tombstone over a segment
    db.execute("INSERT INTO app.notes (id, body) VALUES (4, 'hot')", user="alice")
    db.execute("UPDATE app.rooms SET name = 'c' WHERE id = 2")


def state(db: kalam_engine.Engine) -> dict[str, list]:
    out: dict[str, list] = {"rooms": db.execute(
        "SELECT id, name FROM app.rooms ORDER BY id").to_arrow().to_pylist()}
    for user in ("alice", "bob"):
        out[f"notes/{user}"] = db.execute("SELECT id, body FROM app.notes ORDER BY id",
                                          user=user).to_arrow().to_pylist()
        out[f"events/{user}"] = ids(db, "app.events", user)
    return out


def test_backup_then_restore_gives_back_the_backed_up_state(tmp_path: Path) -> None:
    db = kalam_engine.connect(tmp_path / "data")
    try:
        fill(db)
        before = state(db)
        result = db.execute(f"BACKUP DATABASE TO '{tmp_path / 'b1'}'")
        assert "checksums verified" in result.message and "BK-" in result.message
        old_provider = db.cache.get_provider(TableId("app", "notes"))
        # changes after the backup: rows, a new table, a dropped table, a new user
        db.execute("INSERT INTO app.notes (id, body) VALUES (9, 'later')", user="alice")
        db.execute("CREATE SHARED TABLE app.later (id INT PRIMARY KEY)")
        db.execute("DROP TABLE app.rooms")
        db.execute("CREATE USER carol WITH PASSWORD 'password1' ROLE dba")
        assert db.role_of("carol").label == "dba"
        result = db.execute(f"RESTORE DATABASE FROM '{tmp_path / 'b1'}'")
        assert "RS-" in result.message
        assert state(db) == before
        assert "later" not in db.catalog_snapshot()["app"]
        assert db.role_of("carol").label == "user"  # the restored users table has no carol
        with pytest.raises(RetiredProviderError):
            old_provider.visible_rows(db.context("alice"))
        jobs = db.execute("SELECT job_type FROM system.jobs").to_arrow()["job_type"].to_pylist()
        assert "restore" in jobs
        # writes go on after a restore, and survive a reopen
        db.execute("INSERT INTO app.notes (id, body) VALUES (5, 'new')", user="bob")
        db.execute("STORAGE FLUSH TABLE app.notes")
    finally:
        db.close()
    reopened = kalam_engine.connect(tmp_path / "data")
    try:
        assert ids(reopened, "app.notes", "bob") == [1, 2, 3, 5]
        assert ids(reopened, "app.notes", "alice") == [1, 3, 4]
    finally:
        reopened.close()
    # a backup is a data directory
    direct = kalam_engine.connect(tmp_path / "b1")
    try:
        assert state(direct) == before
    finally:
        direct.close()


def test_backup_of_a_memory_database_opens_as_a_directory(tmp_path: Path) -> None:
    db = kalam_engine.connect(":memory:")
    try:
        fill(db)  # flush does nothing in memory: every row is hot
        before = state(db)
        db.execute(f"BACKUP DATABASE TO '{tmp_path / 'mem'}'")
        with pytest.raises(UnsupportedError):
            db.execute(f"RESTORE DATABASE FROM '{tmp_path / 'mem'}'")
    finally:
        db.close()
    copy = kalam_engine.connect(tmp_path / "mem")
    try:
        assert state(copy) == before
    finally:
        copy.close()


def _writer(db: kalam_engine.Engine, user: str, table: str, acked: list[int],
            stop: threading.Event, errors: list[BaseException]) -> None:
    """Insert pairs (2k, 2k+1) in one statement each; record k once acknowledged."""
    k = 0
    try:
        while not stop.is_set():
            db.execute(f"INSERT INTO {table} (id, k) VALUES ($1, $2), ($3, $2)", user=user,
                       params=[2 * k, k, 2 * k + 1])
            acked.append(k)
            k += 1
    except BaseException as exc:
        errors.append(exc)


def _maintainer(db: kalam_engine.Engine, stop: threading.Event,
                errors: list[BaseException]) -> None:
    """Flush and compact all the time, so segments are written and deleted under backups."""
    try:
        while not stop.is_set():
            db.execute("STORAGE FLUSH ALL IN app")
            db.execute("STORAGE COMPACT ALL IN app")
    except BaseException as exc:
        errors.append(exc)


def test_backup_while_two_threads_write_is_consistent_and_complete(tmp_path: Path) -> None:
    """Every row acknowledged before BACKUP started is in the restored database, and what is
    there is a state that existed: each writer's rows are a prefix of its statements, each
    statement's two rows together. Flush and compaction run meanwhile."""
    db = kalam_engine.connect(tmp_path / "data")
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.mine (id BIGINT PRIMARY KEY, k BIGINT)")
    db.execute("CREATE SHARED TABLE app.common (id BIGINT PRIMARY KEY, k BIGINT)")
    writers = {("alice", "app.mine"): [], ("root", "app.common"): []}
    stop = threading.Event()
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_writer, args=(db, user, table, acked, stop, errors))
               for (user, table), acked in writers.items()]
    threads.append(threading.Thread(target=_maintainer, args=(db, stop, errors)))
    backups = []
    try:
        for t in threads:
            t.start()
        for i in range(4):
            while min(len(a) for a in writers.values()) < 20 * (i + 1) and not errors:
                stop.wait(0.01)
            acked_before = {key: len(acked) for key, acked in writers.items()}
            target = tmp_path / f"backup{i}"
            db.execute(f"BACKUP DATABASE TO '{target}'")
            backups.append((target, acked_before))
    finally:
        stop.set()
        for t in threads:
            t.join()
        db.close()
    assert not errors, errors
    for target, acked_before in backups:
        # every segment the backup's manifest names is there, byte for byte
        files = SegmentFiles(target)
        segments = check_catalog(target / "kalam.sqlite")
        for segment in segments:
            assert segment.checksum is not None
            files.verified_bytes(segment)
        fresh = kalam_engine.connect(tmp_path / f"fresh-{target.name}")
        try:
            fresh.execute(f"RESTORE DATABASE FROM '{target}'")
            for (user, table), acked_count in acked_before.items():
                rows = fresh.execute(f"SELECT id, k FROM {table} ORDER BY id",
                                     user=user).to_arrow()
                got = rows["id"].to_pylist()
                count = len(got) // 2
                assert got == list(range(2 * count)), "not a state that existed"
                assert rows["k"].to_pylist() == [i // 2 for i in range(2 * count)]
                assert count >= acked_count, "an acknowledged row is missing"
        finally:
            fresh.close()


def test_segments_are_not_deleted_while_a_backup_holds_them(tmp_path: Path) -> None:
    """Compaction and DROP TABLE defer deleting the files they replace until the backup lets
    go; a table created again under the same name keeps its new files."""
    db = kalam_engine.connect(tmp_path / "data")
    try:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE SHARED TABLE app.t (id INT PRIMARY KEY)")
        for i in range(3):
            db.execute("INSERT INTO app.t (id) VALUES ($1)", params=[i])
            db.execute("STORAGE FLUSH TABLE app.t")
        old = [tmp_path / "data" / s.path for s in db.storage.manifest.segments()]
        assert len(old) == 3
        with db.storage.deletions.held():
            db.execute("STORAGE COMPACT TABLE app.t")
            assert all(p.exists() for p in old), "compaction deleted a file under a backup"
            assert db.storage.pending.all()  # recorded: a crash leaves them to recovery
        assert not any(p.exists() for p in old)
        assert not db.storage.pending.all()
        assert ids(db, "app.t") == [0, 1, 2]

        kept = [tmp_path / "data" / s.path for s in db.storage.manifest.segments()]
        with db.storage.deletions.held():
            db.execute("DROP TABLE app.t")
            assert all(p.exists() for p in kept)
            db.execute("CREATE SHARED TABLE app.t (id INT PRIMARY KEY)")
            db.execute("INSERT INTO app.t (id) VALUES (42)")
            db.execute("STORAGE FLUSH TABLE app.t")
        assert not any(p.exists() for p in kept)
        assert ids(db, "app.t") == [42]
    finally:
        db.close()
    reopened = kalam_engine.connect(tmp_path / "data")
    try:
        assert ids(reopened, "app.t") == [42]
    finally:
        reopened.close()


def test_backup_paths_are_checked_and_nothing_is_overwritten(tmp_path: Path) -> None:
    db = kalam_engine.connect(tmp_path / "data")
    try:
        fill(db)
        jobs = db.execute("SELECT count(*) AS n FROM system.jobs").to_arrow()["n"][0]
        cases = [
            (tmp_path / "data" / "inside", InvalidParameterError),
            (tmp_path / "data", InvalidParameterError),
            (tmp_path / "missing" / "b", InvalidParameterError),
            (tmp_path / "", AlreadyExistsError),  # non-empty directory
        ]
        (tmp_path / "afile").write_text("x")
        cases.append((tmp_path / "afile", AlreadyExistsError))
        for target, error in cases:
            with pytest.raises(error) as info:
                db.execute(f"BACKUP DATABASE TO '{target}'")
            assert info.value.hint
        with pytest.raises(InvalidParameterError):
            db.execute("BACKUP DATABASE TO ''")
        assert (tmp_path / "afile").read_text() == "x"
        assert not (tmp_path / "data" / "inside").exists()
        assert db.execute("SELECT count(*) AS n FROM system.jobs").to_arrow()["n"][0] == jobs
        (tmp_path / "empty").mkdir()
        db.execute(f"BACKUP DATABASE TO '{tmp_path / 'empty'}'")  # an empty directory is fine
        assert (tmp_path / "empty" / "kalam.sqlite").is_file()
        with pytest.raises(AlreadyExistsError):
            db.execute(f"BACKUP DATABASE TO '{tmp_path / 'empty'}'")
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers
        with pytest.raises(InvalidSqlError):
            db.execute("BACKUP DATABASE TO /tmp/unquoted")
        with pytest.raises(InvalidSqlError):
            db.execute(f"BACKUP DATABASE app TO '{tmp_path / 'x'}'")  # the docs' wrong form
    finally:
        db.close()


def test_restore_refuses_a_damaged_backup_and_changes_nothing(tmp_path: Path) -> None:
    db = kalam_engine.connect(tmp_path / "data")
    try:
        fill(db)
        db.execute(f"BACKUP DATABASE TO '{tmp_path / 'b'}'")
        db.execute("INSERT INTO app.notes (id, body) VALUES (8, 'after')", user="bob")
        after = state(db)
        segment = check_catalog(tmp_path / "b" / "kalam.sqlite")[0]
        damaged = tmp_path / "damaged"
        shutil.copytree(tmp_path / "b", damaged)
        path = damaged / segment.path
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(CorruptDataError):
            db.execute(f"RESTORE DATABASE FROM '{damaged}'")
        (damaged / segment.path).unlink()
        with pytest.raises(MissingFileError):
            db.execute(f"RESTORE DATABASE FROM '{damaged}'")
        bad_catalog = tmp_path / "badcat"
        shutil.copytree(tmp_path / "b", bad_catalog)
        raw = bytearray((bad_catalog / "kalam.sqlite").read_bytes())
        raw[4096:8192] = b"\x00" * 4096
        (bad_catalog / "kalam.sqlite").write_bytes(bytes(raw))
        with pytest.raises(CorruptDataError):
            db.execute(f"RESTORE DATABASE FROM '{bad_catalog}'")
        with pytest.raises(MissingFileError):
            db.execute(f"RESTORE DATABASE FROM '{tmp_path / 'nothing'}'")
        with pytest.raises(InvalidParameterError):
            db.execute(f"RESTORE DATABASE FROM '{tmp_path / 'data'}'")
        assert state(db) == after
        assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".")]
    finally:
        db.close()
    reader = None
    try:
        reader = kalam_engine.connect(tmp_path / "data", read_only=True)
        with pytest.raises(ReadOnlyError):
            reader.execute(f"RESTORE DATABASE FROM '{tmp_path / 'b'}'")
        with pytest.raises(ReadOnlyError):
            reader.execute(f"BACKUP DATABASE TO '{tmp_path / 'c'}'")
    finally:
        if reader is not None:
            reader.close()


@pytest.mark.parametrize("role", ["user", "service", "dba", "system"])
def test_backup_and_restore_need_dba(tmp_path: Path, role: str) -> None:
    db = kalam_engine.connect(tmp_path / "data")
    try:
        fill(db)
        db.execute(f"CREATE USER actor WITH PASSWORD 'password1' ROLE {role}")
        db.execute(f"BACKUP DATABASE TO '{tmp_path / 'b'}'")
        allowed = role in ("dba", "system")
        for sql in (f"BACKUP DATABASE TO '{tmp_path / 'mine'}'",
                    f"RESTORE DATABASE FROM '{tmp_path / 'b'}'"):
            if allowed:
                db.execute(sql, user="actor")
                continue
            with pytest.raises(PermissionDeniedError):
                db.execute(sql, user="actor")
            with pytest.raises(PermissionDeniedError):  # EXECUTE AS runs with role user
                db.execute(f"EXECUTE AS USER 'alice' ({sql})")
        assert (tmp_path / "mine").exists() == allowed
    finally:
        db.close()


def _export(path: str) -> dict[str, object]:
    with zipfile.ZipFile(path) as archive:
        out: dict[str, object] = {"export.json": json.loads(archive.read("export.json"))}
        for name in archive.namelist():
            if name.endswith(".parquet"):
                out[name] = pq.read_table(io.BytesIO(archive.read(name))).to_pylist()
    return out


def test_export_user_data_holds_only_the_callers_rows(tmp_path: Path) -> None:
    db = kalam_engine.connect(tmp_path / "data")
    try:
        fill(db)
        db.execute("CREATE USER bob WITH PASSWORD 'password1' ROLE user")
        result = db.execute("EXPORT USER DATA", user="alice")
        assert "UE-" in result.message
        shown = db.execute("SHOW EXPORT", user="alice").to_arrow().to_pylist()
        assert len(shown) == 1 and shown[0]["user_id"] == "alice"
        assert shown[0]["status"] == "completed" and shown[0]["rows"] == 3
        content = _export(shown[0]["path"])
        assert set(content) == {"export.json", "app/notes.parquet"}  # USER tables only
        rows = content["app/notes.parquet"]
        assert [(r["id"], r["body"]) for r in rows] == [(1, "alice"), (3, "alice"), (4, "hot")]
        assert "_deleted" not in rows[0]
        assert db.execute("SHOW EXPORT", user="bob").row_count == 0  # not alice's exports
        assert db.execute("SHOW EXPORT").row_count == 0  # nor root's
        db.execute("EXPORT USER DATA", user="bob")
        bob = db.execute("SHOW EXPORT", user="bob").to_arrow().to_pylist()
        assert [r["body"] for r in _export(bob[0]["path"])["app/notes.parquet"]] == ["bob"] * 3
        assert db.execute("SHOW EXPORT", user="alice").row_count == 1
        jobs = db.execute("SELECT job_type FROM system.jobs WHERE job_id LIKE 'UE-%'")
        assert jobs.to_arrow()["job_type"].to_pylist() == ["user_export"] * 2
    finally:
        db.close()
    reader = kalam_engine.connect(tmp_path / "data", read_only=True)
    try:
        assert reader.execute("SHOW EXPORT", user="alice").row_count == 1
        with pytest.raises(ReadOnlyError):
            reader.execute("EXPORT USER DATA", user="alice")
    finally:
        reader.close()
    memory = kalam_engine.connect(":memory:")
    try:
        with pytest.raises(UnsupportedError):
            memory.execute("EXPORT USER DATA", user="alice")
    finally:
        memory.close()
