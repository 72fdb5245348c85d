"""``connect(path, read_only=True)``: a consistent read-only view of a directory another engine
writes (issue 11, item 2). It never changes the directory, refuses every write, and never
serves stale rows: each statement first reloads what the writer committed since.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from writer_process import WriterProcess

import kalam_engine
from kalam_engine.model.errors import (
    MissingFileError,
    ReadOnlyError,
    TableNotFoundError,
)
from kalam_engine.storage.segment_files import SegmentFiles

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock and SIGKILL")

TABLE = "CREATE USER TABLE app.m (id BIGINT PRIMARY KEY, body TEXT)"
WRITES = [
    "INSERT INTO app.m (id, body) VALUES (99, 'x')",
    "UPDATE app.m SET body = 'x' WHERE id = 1",
    "DELETE FROM app.m WHERE id = 1",
    "CREATE NAMESPACE other",
    "DROP NAMESPACE app CASCADE",
    "CREATE SHARED TABLE app.s (id INT PRIMARY KEY)",
    "ALTER TABLE app.m ADD COLUMN n INT",
    "DROP TABLE app.m",
    "STORAGE FLUSH TABLE app.m",
    "STORAGE FLUSH ALL IN app",
    "STORAGE COMPACT TABLE app.m",
    "CREATE USER carol WITH PASSWORD 'secret123' ROLE user",
    "ALTER USER root SET ROLE user",
    "DROP USER alice",
    "EXECUTE AS USER 'alice' (SELECT * FROM app.m)",
]


def rows_of(db: kalam_engine.Engine, user: str, table: str = "app.m") -> dict[int, str]:
    got = db.execute(f"SELECT id, body FROM {table}", user=user).to_arrow()
    return dict(zip(got["id"].to_pylist(), got["body"].to_pylist(), strict=True))


def role_of(db: kalam_engine.Engine, user: str) -> str:
    return db.execute("SELECT CURRENT_ROLE() AS r", user=user).to_arrow()["r"][0].as_py()


def files_of(directory: Path) -> dict[str, str]:
    """Every file and its content hash, without SQLite's -shm index (shared memory, rebuilt
    by every connection)."""
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and
            not p.name.endswith("-shm")}


@pytest.fixture
def writer(tmp_path: Path) -> Any:
    db = kalam_engine.connect(tmp_path / "data")
    db.execute("CREATE NAMESPACE app")
    db.execute(TABLE)
    db.execute("INSERT INTO app.m (id, body) VALUES (1, 'a'), (2, 'b')", user="alice")
    yield db
    db.close()


# --- following a writer in another process


def test_reader_sees_every_commit_of_a_writer_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with WriterProcess(data) as w:
        w.sql("CREATE NAMESPACE app")
        w.sql(TABLE)
        w.sql("INSERT INTO app.m (id, body) VALUES (1, 'a'), (2, 'b')", user="alice")
        w.sql("CREATE USER bob WITH PASSWORD 'secret123' ROLE user")
        ro = kalam_engine.connect(data, read_only=True)
        try:
            assert rows_of(ro, "alice") == {1: "a", 2: "b"}
            assert role_of(ro, "bob") == "user"
            w.sql("INSERT INTO app.m (id, body) VALUES (3, 'c')", user="alice")
            assert rows_of(ro, "alice") == {1: "a", 2: "b", 3: "c"}
            w.sql("STORAGE FLUSH TABLE app.m")  # hot rows leave the log for a segment
            assert rows_of(ro, "alice") == {1: "a", 2: "b", 3: "c"}
            w.sql("DELETE FROM app.m WHERE id = 1", user="alice")
            w.sql("UPDATE app.m SET body = 'B' WHERE id = 2", user="alice")
            assert rows_of(ro, "alice") == {2: "B", 3: "c"}
            w.sql("STORAGE FLUSH TABLE app.m")
            w.sql("STORAGE COMPACT TABLE app.m")  # the segments read before are deleted
            assert rows_of(ro, "alice") == {2: "B", 3: "c"}
            w.sql("ALTER USER bob SET ROLE dba")
            assert role_of(ro, "bob") == "dba"
            with pytest.raises(ReadOnlyError):
                ro.execute("INSERT INTO app.m (id, body) VALUES (9, 'z')", user="alice")
            w.sql("CREATE SHARED TABLE app.s (id INT PRIMARY KEY, body TEXT)")
            w.sql("INSERT INTO app.s (id, body) VALUES (5, 'shared')")
            assert rows_of(ro, "root", "app.s") == {5: "shared"}
            w.sql("DROP TABLE app.s")
            with pytest.raises(TableNotFoundError):
                ro.execute("SELECT * FROM app.s")
            w.sql("INSERT INTO app.m (id, body) VALUES (4, 'd')", user="alice")
            w.kill()  # the reader keeps the last commit; a new writer may open beside it
            assert rows_of(ro, "alice") == {2: "B", 3: "c", 4: "d"}
            with kalam_engine.connect(data) as again:
                again.execute("INSERT INTO app.m (id, body) VALUES (5, 'e')", user="alice")
                assert rows_of(ro, "alice") == {2: "B", 3: "c", 4: "d", 5: "e"}
        finally:
            ro.close()


def test_reader_refuses_every_write_and_changes_nothing(writer: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    writer.execute("STORAGE FLUSH TABLE app.m")
    writer.execute("INSERT INTO app.m (id, body) VALUES (3, 'c')", user="alice")
    before = files_of(data)
    with kalam_engine.connect(data, read_only=True) as ro:
        for sql in WRITES:
            with pytest.raises(ReadOnlyError) as err:
                ro.execute(sql)
            assert err.value.code == "PERMISSION_DENIED"
            assert "read_only=True" in str(err.value) and err.value.hint
        with pytest.raises(ReadOnlyError):
            ro.insert_arrow("app.m", pa.table({"id": [7], "body": ["q"]}), user="alice")
        assert rows_of(ro, "alice") == {1: "a", 2: "b", 3: "c"}
        ro.execute("USE app")  # a session setting, not a write
        assert ro.execute("SHOW TABLES").row_count == 1
    assert files_of(data) == before
    assert rows_of(writer, "alice") == {1: "a", 2: "b", 3: "c"}


def test_reader_of_a_killed_writers_directory_recovers_nothing(tmp_path: Path) -> None:
    """Unflushed hot rows are read from the log; a segment the writer never committed is
    neither read nor deleted; the log is not replayed away; no lock file appears."""
    data = tmp_path / "data"
    with WriterProcess(data) as w:
        w.sql("CREATE NAMESPACE app")
        w.sql(TABLE)
        w.sql("INSERT INTO app.m (id, body) VALUES (1, 'a')", user="alice")
        w.sql("STORAGE FLUSH TABLE app.m")
        w.sql("INSERT INTO app.m (id, body) VALUES (2, 'b')", user="alice")
        w.kill()
    orphan = data / "storage" / "app" / "m" / "alice" / "batch-7.parquet.tmp"
    orphan.write_bytes(b"half a segment")
    (data / "kalam.lock").unlink()
    before = files_of(data)
    with kalam_engine.connect(data, read_only=True) as ro:
        assert rows_of(ro, "alice") == {1: "a", 2: "b"}
        assert ro.execute("SELECT COUNT(*) AS n FROM system.namespaces").row_count == 1
    assert files_of(data) == before
    assert not (data / "kalam.lock").exists()
    with kalam_engine.connect(data) as db:  # the writer's own open recovers
        assert rows_of(db, "alice") == {1: "a", 2: "b"}
    assert not orphan.exists()


def test_read_only_needs_an_existing_database(tmp_path: Path) -> None:
    for path in (tmp_path / "nothing", tmp_path):
        with pytest.raises(MissingFileError) as err:
            kalam_engine.connect(path, read_only=True)
        assert "kalam.sqlite" in str(err.value) and err.value.hint
    assert list(tmp_path.iterdir()) == []


# --- segments that change under a snapshot


class _PausingFiles(SegmentFiles):
    """The reader's segment files, running ``meanwhile`` (the writer's work) right before the
    first read: the writer commits after the reader's snapshot began and before it reads."""

    __slots__ = ("meanwhile",)

    def read(self, relative: str, fields: pa.Schema | None = None) -> pa.Table:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return super().read(relative, fields)


def _pause_reads(ro: kalam_engine.Engine, meanwhile: Any) -> None:
    files = _PausingFiles(ro.storage.files.root)
    files.meanwhile = meanwhile
    ro.storage.files = files


def test_segment_compacted_away_under_a_snapshot_is_read_again(writer: Any,
                                                               tmp_path: Path) -> None:
    writer.execute("STORAGE FLUSH TABLE app.m")
    writer.execute("INSERT INTO app.m (id, body) VALUES (3, 'c')", user="alice")
    writer.execute("STORAGE FLUSH TABLE app.m")
    with kalam_engine.connect(tmp_path / "data", read_only=True) as ro:
        reloads = ro._view.reloads
        _pause_reads(ro, lambda: writer.execute("STORAGE COMPACT TABLE app.m"))
        assert rows_of(ro, "alice") == {1: "a", 2: "b", 3: "c"}
        assert ro._view.reloads == reloads + 1  # the stale snapshot was dropped
        assert ro.storage.segment_changes >= 1


def test_reused_segment_path_is_not_mixed_into_an_older_snapshot(writer: Any,
                                                                tmp_path: Path) -> None:
    """Compaction that leaves no segment restarts batch numbers: the next flush writes a new
    ``batch-0``. A reader whose snapshot names the old ``batch-0`` (and older hot rows) must
    not combine them into a state that never existed."""
    writer.execute("STORAGE FLUSH TABLE app.m")  # batch-0: 1, 2
    writer.execute("INSERT INTO app.m (id, body) VALUES (3, 'c')", user="alice")  # hot

    def rewrite() -> None:
        writer.execute("DELETE FROM app.m WHERE id IN (1, 2, 3)", user="alice")
        writer.execute("STORAGE FLUSH TABLE app.m")
        writer.execute("STORAGE COMPACT TABLE app.m")  # nothing left: no segment
        writer.execute("INSERT INTO app.m (id, body) VALUES (7, 'g'), (8, 'h')", user="alice")
        writer.execute("STORAGE FLUSH TABLE app.m")  # batch-0 again, other rows

    with kalam_engine.connect(tmp_path / "data", read_only=True) as ro:
        ro.execute("SELECT 1")
        _pause_reads(ro, rewrite)
        assert rows_of(ro, "alice") == {7: "g", 8: "h"}
        assert ro.storage.segment_changes >= 1


def test_segment_gone_for_good_is_a_missing_file_error(writer: Any, tmp_path: Path) -> None:
    writer.execute("STORAGE FLUSH TABLE app.m")
    for segment in (tmp_path / "data" / "storage").rglob("*.parquet"):
        segment.unlink()
    with kalam_engine.connect(tmp_path / "data", read_only=True) as ro:
        with pytest.raises(MissingFileError) as err:
            ro.execute("SELECT * FROM app.m", user="alice")
        assert err.value.code == "MISSING_FILE" and err.value.hint
        assert ro.execute("SELECT 1 AS one").row_count == 1  # the engine stays usable


# --- a model: after any sequence of writes, the reader answers like the writer


USERS = ("alice", "bob")
ROLES = ("user", "service", "dba")
op = st.one_of(
    st.tuples(st.just("insert"), st.sampled_from(USERS), st.integers(1, 6)),
    st.tuples(st.just("update"), st.sampled_from(USERS), st.integers(1, 6)),
    st.tuples(st.just("delete"), st.sampled_from(USERS), st.integers(1, 6)),
    st.tuples(st.just("flush")),
    st.tuples(st.just("compact")),
    st.tuples(st.just("role"), st.sampled_from(ROLES)),
    st.tuples(st.just("alter")),
    st.tuples(st.just("read")),
)


def _apply(w: kalam_engine.Engine, step: tuple, model: dict, counter: list[int]) -> None:
    kind = step[0]
    counter[0] += 1
    if kind == "insert" and step[2] not in model[step[1]]:
        w.execute(f"INSERT INTO app.m (id, body) VALUES ({step[2]}, 'v{counter[0]}')",
                  user=step[1])
        model[step[1]][step[2]] = f"v{counter[0]}"
    elif kind == "update" and step[2] in model[step[1]]:
        w.execute(f"UPDATE app.m SET body = 'u{counter[0]}' WHERE id = {step[2]}", user=step[1])
        model[step[1]][step[2]] = f"u{counter[0]}"
    elif kind == "delete":
        w.execute(f"DELETE FROM app.m WHERE id = {step[2]}", user=step[1])
        model[step[1]].pop(step[2], None)
    elif kind in ("flush", "compact"):
        w.execute(f"STORAGE {kind.upper()} TABLE app.m")
    elif kind == "role":
        w.execute(f"ALTER USER bob SET ROLE {step[1]}")
        model["role"] = step[1]
    elif kind == "alter":
        model["version"] += 1
        w.execute(f"ALTER TABLE app.m ADD COLUMN c{model['version']} INT")


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(op, min_size=1, max_size=14))
def test_reader_always_answers_like_the_writer(steps: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        with kalam_engine.connect(data) as w:
            w.execute("CREATE NAMESPACE app")
            w.execute(TABLE)
            w.execute("CREATE USER bob WITH PASSWORD 'secret123' ROLE user")
            model: dict[str, Any] = {"alice": {}, "bob": {}, "role": "user", "version": 0}
            counter = [0]
            with kalam_engine.connect(data, read_only=True) as ro:
                for step in steps:
                    _apply(w, step, model, counter)
                    if step[0] != "read":
                        continue
                    for user in USERS:
                        assert rows_of(ro, user) == model[user] == rows_of(w, user)
                    assert role_of(ro, "bob") == model["role"]
                for user in USERS:
                    assert rows_of(ro, user) == model[user]
                assert role_of(ro, "bob") == model["role"]
                cols = ro.execute("SELECT * FROM app.m", user="alice").to_arrow().column_names
                assert f"c{model['version']}" in cols or model["version"] == 0
