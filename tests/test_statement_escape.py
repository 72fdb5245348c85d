"""No text escapes the dialect: every bypass shape is refused with a KalamError, nothing is
written anywhere on disk, and a pooled DataFusion session is afterwards the same as a fresh one.

The mechanism under test is DataFusion's ``SQLOptions`` (no DDL, DML or statements) on every plan
the engine makes, plus one tokenizer that reads comments and strings as DataFusion does. The
corpus is run as role user (mallory) and as root: no role may write files through DataFusion.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import pytest

import kalam_engine
from kalam_engine import KalamError
from kalam_engine.sql.tokens import split_statements

NEST = "/* /* */ SELECT */ "

# {out}: a file outside the data directory; {seg}: alice's Parquet segment; {seg_dir}: its folder
CORPUS = [
    # nested comments hide the real first word from a regex (DataFusion reads them nested)
    NEST + "COPY (SELECT 1) TO '{out}' STORED AS CSV",
    NEST + "COPY (SELECT 'forged' AS body) TO '{seg}' STORED AS PARQUET",
    NEST + "COPY app.messages TO '{out}'",
    NEST + "CREATE EXTERNAL TABLE stolen STORED AS PARQUET LOCATION '{seg_dir}'",
    NEST + "CREATE EXTERNAL TABLE passwd (line TEXT) STORED AS CSV LOCATION '/etc/passwd'",
    NEST + "CREATE DATABASE evil",
    NEST + "CREATE SCHEMA kalam.evil",
    NEST + "CREATE VIEW app.messages AS SELECT 1 AS id, 'forged' AS body, 0 AS score",
    NEST + "CREATE OR REPLACE VIEW app.v AS SELECT 1",
    NEST + "CREATE TABLE app.forged AS SELECT 1 AS id",
    NEST + "SET datafusion.catalog.default_catalog = 'datafusion'",
    NEST + "SET datafusion.execution.target_partitions = 99",
    NEST + "DROP VIEW app.messages",
    NEST + "PREPARE p AS SELECT 1",
    NEST + "CREATE FUNCTION f(INT) RETURNS INT RETURN 1",
    "/* /* /* */ */ SELECT */ COPY (SELECT 1) TO '{out}'",
    "/*/**/SELECT*/COPY (SELECT 1) TO '{out}'",
    # unclosed comments and strings
    "/* SELECT 1",
    "/* /* */ SELECT 1",
    "SELECT 1 /* ; COPY (SELECT 1) TO '{out}'",
    "SELECT 'a; COPY (SELECT 1) TO ''{out}''",
    "SELECT $$ ; COPY (SELECT 1) TO '{out}'",
    "-- SELECT\nCOPY (SELECT 1) TO '{out}'",
    # quoted keywords, case and unicode tricks
    "\"COPY\" (SELECT 1) TO '{out}'",
    "cOpY (SELECT 1) TO '{out}'",
    "\u200bCOPY (SELECT 1) TO '{out}'",
    "\ufeffCOPY (SELECT 1) TO '{out}'",
    "\uff23\uff2f\uff30\uff39 (SELECT 1) TO '{out}'",
    "SELECT\u00a01; COPY (SELECT 1) TO '{out}'",
    "S\u0435LECT 1",  # a Cyrillic e
    "E'SELECT' COPY (SELECT 1) TO '{out}'",
    # leading '(', VALUES, TABLE, WITH, EXPLAIN
    "(COPY (SELECT 1) TO '{out}')",
    "( /* */ COPY (SELECT 1) TO '{out}' )",
    "((SELECT 1)) UNION ALL (COPY (SELECT 1) TO '{out}')",
    "VALUES (1) ; COPY (SELECT 1) TO '{out}'",
    "TABLE app.messages; COPY (SELECT 1) TO '{out}'",
    "WITH a AS (SELECT 1) COPY (SELECT * FROM a) TO '{out}'",
    "WITH a AS (COPY (SELECT 1) TO '{out}') SELECT 1",
    "WITH x AS (INSERT INTO app.messages VALUES (9, 'x', 9)) SELECT 1",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '{out}'",
    "EXPLAIN COPY (SELECT 1) TO '{out}'",
    "EXPLAIN ANALYZE CREATE EXTERNAL TABLE s STORED AS PARQUET LOCATION '{seg_dir}'",
    "EXPLAIN ANALYZE SELECT 1 INTO evil",
    "SELECT 1 INTO evil",
    "SELECT * INTO evil FROM app.messages",
    # files named as tables or functions
    "SELECT * FROM '{seg}'",
    "SELECT * FROM \"{seg}\"",
    "SELECT * FROM read_parquet('{seg}')",
    "SELECT * FROM parquet_scan('{seg}')",
    "SELECT * FROM '/etc/passwd'",
    "DESCRIBE '{seg}'",
    # multi-statement texts and EXECUTE AS
    "SELECT 1; " + NEST + "COPY (SELECT 1) TO '{out}'",
    "SELECT 1;COPY (SELECT 1) TO '{out}';",
    "EXECUTE AS USER 'mallory' (" + NEST + "COPY (SELECT 1) TO '{out}')",
    "EXECUTE AS USER 'mallory' (SELECT 1; COPY (SELECT 1) TO '{out}')",
    "PREPARE p AS SELECT 1",
    "DEALLOCATE p",
    "SET datafusion.catalog.default_catalog = 'datafusion'",
    "RESET datafusion.catalog.default_catalog",
    "COPY (SELECT 1) TO '{out}'",
    "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{out}'",
    "CREATE VIEW v AS SELECT 1",
]


def _rows(db, sql: str, user: str | None = None) -> list[dict]:
    return db.execute(sql, user=user).to_arrow().to_pylist()


def _tree_digest(*roots: Path) -> dict[str, str]:
    """Every file under ``roots`` with a hash of its bytes (and every folder); SQLite's
    shared-memory index (``-shm``), which readers update, is left out."""
    out: dict[str, str] = {}
    for root in roots:
        for folder, _dirs, files in os.walk(root):
            out[folder] = "dir"
            for name in files:
                if name.endswith("-shm"):
                    continue
                path = os.path.join(folder, name)
                out[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def _session_fingerprint(session) -> tuple:
    """What a request could observe of a session: settings, catalogs, schemas and tables."""
    settings = session.sql(
        "SELECT name, value FROM information_schema.df_settings ORDER BY name").to_pylist()
    catalogs = sorted(session.catalog_names())
    tables = session.sql(
        "SELECT table_catalog, table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema <> 'information_schema' ORDER BY 1, 2, 3").to_pylist()
    return str(settings), catalogs, str(tables)


@pytest.fixture
def setup(tmp_path: Path):
    data = tmp_path / "data"
    outside = tmp_path / "outside"
    outside.mkdir()
    db = kalam_engine.connect(data)
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.messages (id BIGINT PRIMARY KEY, body TEXT NOT NULL, "
               "score INT DEFAULT 0)")
    db.execute("INSERT INTO app.messages (id, body) VALUES (1, 'alice secret'), (2, 'two')",
               user="alice")
    db.execute("STORAGE FLUSH TABLE app.messages")
    db.execute("INSERT INTO app.messages (id, body) VALUES (3, 'mallory')", user="mallory")
    seg_dir = data / "storage" / "app" / "messages" / "alice"
    segments = sorted(seg_dir.glob("*.parquet"))
    assert segments, "the flush wrote alice's segment"
    fill = {"out": str(outside / "stolen.csv"), "seg": str(segments[0]),
            "seg_dir": str(seg_dir) + "/"}
    yield db, data, outside, fill
    db.close()


@pytest.mark.parametrize("user", ["mallory", None], ids=["role-user", "root"])
def test_no_bypass_shape_runs_or_writes_anything(setup, user) -> None:
    db, data, outside, fill = setup
    before = _tree_digest(data, outside)
    alice_before = _rows(db, "SELECT * FROM app.messages", "alice")
    accepted = []
    for shape in CORPUS:
        sql = shape.format(**fill)
        try:
            db.execute(sql, user=user)
        except KalamError as exc:
            assert exc.code and str(exc), sql
        else:
            accepted.append(sql)
    assert accepted == []
    assert _tree_digest(data, outside) == before
    assert list(outside.iterdir()) == []
    # nothing forged reaches a later request of another user
    assert _rows(db, "SELECT * FROM app.messages", "alice") == alice_before
    db.execute("UPDATE app.messages SET score = score + 1 WHERE id = 1", user="alice")
    rows = _rows(db, "SELECT id, body, score FROM app.messages", "alice")
    assert rows == [{"id": 1, "body": "alice secret", "score": 1},
                    {"id": 2, "body": "two", "score": 0}]
    assert _rows(db, "SELECT body FROM app.messages", "mallory") == [
        {"body": "mallory"}]


def test_pooled_sessions_stay_as_fresh_ones(setup) -> None:
    db, _data, _outside, fill = setup
    for shape in CORPUS:
        for user in ("mallory", None):
            with contextlib.suppress(KalamError):
                db.execute(shape.format(**fill), user=user)
    pooled = [lent for idle in db.runner._sessions._idle.values() for lent in idle]
    assert pooled, "the requests left sessions in the pool"
    for session, catalog in pooled:
        assert catalog.state is None  # no request's state stays behind
        fresh, _ = db.runner._sessions.fresh(catalog_namespace(session))
        assert _session_fingerprint(session) == _session_fingerprint(fresh)


def catalog_namespace(session) -> str:
    """The default namespace a pooled session was made for."""
    rows = session.sql("SELECT value FROM information_schema.df_settings WHERE name = "
                       "'datafusion.catalog.default_schema'").to_pylist()
    return rows[0]["value"]


def test_queries_still_run(setup) -> None:
    """The options forbid statements, not queries: EXPLAIN, WITH, VALUES, leading '(' and
    comments (nested too) still work."""
    db, *_ = setup
    assert db.execute(NEST + "SELECT body FROM app.messages", user="alice").row_count == 2
    assert _rows(db, "(SELECT 1 AS x)", "alice") == [{"x": 1}]
    assert db.execute("VALUES (1), (2)", user="alice").row_count == 2
    assert _rows(db, "WITH a AS (SELECT id FROM app.messages) SELECT count(*) AS n FROM a",
                 "alice") == [{"n": 2}]
    assert db.execute("EXPLAIN SELECT * FROM app.messages").row_count >= 1
    assert _rows(db, "SELECT $$a;b$$ AS s", "alice") == [{"s": "a;b"}]


def test_one_splitter_for_engine_and_magics() -> None:
    from kalam_jupyter import sqltext

    assert sqltext.split_statements is split_statements
    assert split_statements("SELECT $$a;b$$; SELECT 2") == ["SELECT $$a;b$$", "SELECT 2"]
    assert split_statements("SELECT $t$;$t$ ; SELECT E'\\';'") == ["SELECT $t$;$t$",
                                                                  "SELECT E'\\';'"]
    assert split_statements("EXECUTE AS USER 'u' (SELECT 1; )") == [
        "EXECUTE AS USER 'u' (SELECT 1; )"]
    assert split_statements(NEST + "SELECT 1; SELECT `a;b` FROM t") == [
        NEST + "SELECT 1", "SELECT `a;b` FROM t"]


def test_execute_as_takes_a_trailing_semicolon(setup) -> None:
    db, *_ = setup
    rows = db.execute("EXECUTE AS USER 'alice' (SELECT id FROM app.messages; )")
    assert rows.to_arrow().to_pylist() == [{"id": 1}, {"id": 2}]


DML_ESCAPES = [
    "UPDATE app.messages SET body = 'x' WHERE id = 3 UNION ALL SELECT 3, 'forged', 9",
    "UPDATE app.messages SET body = 'x' WHERE false UNION ALL SELECT 1, 'forged', 9",
    "DELETE FROM app.messages WHERE false UNION ALL SELECT 77, 'forged', 1",
    "DELETE FROM app.messages WHERE false) UNION ALL (SELECT 77, 'forged', 1",
    "UPDATE app.messages SET body = 'x' WHERE (id = 3)) UNION ALL ((SELECT 3, 'f', 9)",
    "UPDATE app.messages SET body = 'x' UNION SELECT 'y' WHERE true",
    "UPDATE app.messages SET score = 1 WHERE id = 3 ORDER BY id LIMIT 1",
]


def test_update_and_delete_pieces_stay_one_expression(setup) -> None:
    """The WHERE text of UPDATE/DELETE cannot end the clause and add forged rows (which the
    write would then store as new versions or tombstones of keys that do not exist)."""
    db, *_ = setup
    before = _rows(db, "SELECT id, body, score, _deleted FROM app.messages "
                       "WHERE _deleted OR NOT _deleted", "mallory")
    for sql in DML_ESCAPES:
        with pytest.raises(KalamError):
            db.execute(sql, user="mallory")
    after = _rows(db, "SELECT id, body, score, _deleted FROM app.messages "
                      "WHERE _deleted OR NOT _deleted", "mallory")
    assert after == before
    db.execute("UPDATE app.messages SET score = score + 1 WHERE id IN (SELECT 3) AND (true)",
               user="mallory")
    assert _rows(db, "SELECT score FROM app.messages", "mallory") == [{"score": 1}]
