"""COSINE_DISTANCE over EMBEDDING(n) columns, ALTER TABLE ... CREATE/DROP INDEX, and the vector
index answering ORDER BY COSINE_DISTANCE(..) LIMIT k exactly as a full scan does."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import kalam_engine
from kalam_engine.model.errors import (
    AlreadyExistsError,
    InvalidParameterError,
    InvalidSqlError,
    PermissionDeniedError,
    UnsupportedError,
)


def vec(values) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def cosine(a, b) -> float | None:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return None if norms == 0 else float(1 - a @ b / norms)


@pytest.fixture
def docs(db):
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.docs (id BIGINT PRIMARY KEY, owner TEXT, "
               "e EMBEDDING(3), f EMBEDDING(3), g EMBEDDING(2))")
    db.execute("INSERT INTO app.docs (id, owner, e, f) VALUES "
               "(1, 'alice', '[1,0,0]', '[1,0,0]'), (2, 'alice', '[0,1,0]', '[1,1,0]'), "
               "(3, 'alice', NULL, '[0,0,1]'), (4, 'alice', '[0,0,0]', '[1,0,0]'), "
               "(5, 'alice', '[1,1,0]', NULL)", user="alice")
    return db


def rows(db, sql, user="alice", params=None) -> dict:
    return db.execute(sql, user=user, params=params).to_arrow().to_pydict()


def test_string_literal_in_select_and_order_by(docs):
    got = rows(docs, "SELECT id, COSINE_DISTANCE(e, '[1.0,0.0,0.0]') AS d FROM app.docs "
                     "ORDER BY d, id")
    assert got["id"] == [1, 5, 2, 3, 4]
    assert got["d"][:3] == pytest.approx([0.0, cosine([1, 1, 0], [1, 0, 0]), 1.0])
    assert got["d"][3:] == [None, None]  # NULL vector, zero vector
    got = rows(docs, "SELECT id FROM app.docs ORDER BY COSINE_DISTANCE(e, '[0,1,0]') LIMIT 2")
    assert got["id"] == [2, 5]


def test_parameter_and_column_arguments(docs):
    for param in ("[0,1,0]", [0.0, 1.0, 0.0]):
        got = rows(docs, "SELECT id, cosine_distance(e, $1) AS d FROM app.docs ORDER BY id",
                   params=[param])
        assert got["d"][2:4] == [None, None]
        assert [got["d"][i] for i in (0, 1, 4)] == pytest.approx(
            [1.0, 0.0, cosine([1, 1, 0], [0, 1, 0])])
    got = rows(docs, "SELECT id, cosine_distance(e, f) AS d FROM app.docs ORDER BY id")
    assert got["d"][0] == pytest.approx(0.0)
    assert got["d"][1] == pytest.approx(cosine([0, 1, 0], [1, 1, 0]))
    assert got["d"][2:] == [None, None, None]
    # the literal on either side, and inside other expressions
    got = rows(docs, "SELECT round(COSINE_DISTANCE('[1,0,0]', e), 3) AS d FROM app.docs "
                     "WHERE id = 2")
    assert got["d"] == [1.0]


@pytest.mark.parametrize("sql, params, error", [
    ("SELECT COSINE_DISTANCE(e, '[1,0]') FROM app.docs", None, InvalidParameterError),
    ("SELECT COSINE_DISTANCE(e, g) FROM app.docs WHERE id = 1", None, None),  # g is NULL
    ("SELECT COSINE_DISTANCE(e, $1) FROM app.docs", ["[1,0,0,0]"], InvalidParameterError),
    ("SELECT COSINE_DISTANCE(e, '[1,zero,0]') FROM app.docs", None, InvalidParameterError),
    ("SELECT COSINE_DISTANCE(e, 'hello') FROM app.docs", None, InvalidParameterError),
])
def test_bad_vectors_are_clear_errors(docs, sql, params, error):
    if error is None:
        assert rows(docs, sql, params=params)
        return
    with pytest.raises(error) as caught:
        docs.execute(sql, user="alice", params=params)
    assert caught.value.hint


def test_dimension_mismatch_between_columns(docs):
    docs.execute("UPDATE app.docs SET g = '[1,0]' WHERE id = 1", user="alice")
    with pytest.raises(InvalidParameterError, match="same dimension"):
        docs.execute("SELECT COSINE_DISTANCE(e, g) FROM app.docs", user="alice")


def options(db) -> dict:
    text = rows(db, "SELECT options FROM system.tables WHERE table_name = 'docs'",
                user=None)["options"][0]
    return json.loads(text)


def version(db) -> int:
    return rows(db, "SELECT version FROM system.tables WHERE table_name = 'docs'",
                user=None)["version"][0]


def test_create_and_drop_index_are_recorded(docs):
    v = version(docs)
    result = docs.execute("ALTER TABLE app.docs CREATE INDEX e USING COSINE")
    assert "vector index on e" in result.message
    assert options(docs)["vector_indexes"] == {"e": "cosine"}
    docs.execute("ALTER TABLE app.docs CREATE VECTOR INDEX f")
    assert options(docs)["vector_indexes"] == {"e": "cosine", "f": "cosine"}
    docs.execute("ALTER TABLE app.docs RENAME COLUMN f TO f2")
    assert options(docs)["vector_indexes"] == {"e": "cosine", "f2": "cosine"}
    docs.execute("ALTER TABLE app.docs DROP COLUMN f2")
    docs.execute("ALTER TABLE app.docs DROP INDEX e")
    assert "vector_indexes" not in options(docs)
    assert version(docs) == v + 5  # every ALTER is a schema version


@pytest.mark.parametrize("sql, error", [
    ("ALTER TABLE app.docs CREATE INDEX owner USING COSINE", InvalidParameterError),
    ("ALTER TABLE app.docs CREATE INDEX nope", InvalidParameterError),
    ("ALTER TABLE app.docs CREATE INDEX e USING L2", UnsupportedError),
    ("ALTER TABLE app.docs CREATE INDEX e USING MANHATTAN", InvalidSqlError),
    ("ALTER TABLE app.docs CREATE INDEX e", AlreadyExistsError),
    ("ALTER TABLE app.docs DROP INDEX f", InvalidParameterError),
    ("ALTER TABLE app.docs CREATE TABLE e", InvalidSqlError),
])
def test_rejected_index_statements_change_nothing(docs, sql, error):
    docs.execute("ALTER TABLE app.docs CREATE INDEX e")
    before = (version(docs), options(docs))
    with pytest.raises(error) as caught:
        docs.execute(sql)
    assert caught.value.hint or error is UnsupportedError
    assert (version(docs), options(docs)) == before


def test_index_ddl_needs_dba(docs):
    with pytest.raises(PermissionDeniedError):
        docs.execute("ALTER TABLE app.docs CREATE INDEX e", user="alice")
    docs.execute("CREATE USER dana WITH PASSWORD 'secret-pass-1' ROLE dba")
    docs.execute("ALTER TABLE app.docs CREATE INDEX e", user="dana")
    assert options(docs)["vector_indexes"] == {"e": "cosine"}


def test_index_survives_reopen(tmp_path):
    with kalam_engine.connect(tmp_path / "d") as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.docs (id INT PRIMARY KEY, e EMBEDDING(2))")
        db.execute("ALTER TABLE app.docs CREATE INDEX e USING COSINE")
    with kalam_engine.connect(tmp_path / "d") as db:
        assert options(db)["vector_indexes"] == {"e": "cosine"}


# --- the index answers as the scan does ------------------------------------------------------


def load(db, table: str, user: str, ids, vectors, dim: int) -> None:
    data = pa.table({
        "id": pa.array(ids, pa.int64()), "owner": pa.array([user] * len(ids)),
        "e": pa.array([None if v is None else [float(x) for x in v] for v in vectors],
                      pa.list_(pa.float32(), dim))})
    db.insert_arrow(table, data, user=user)


def twin_tables(db, dim: int) -> None:
    db.execute("CREATE NAMESPACE IF NOT EXISTS app")
    for name in ("plain", "indexed"):
        db.execute(f"CREATE USER TABLE app.{name} (id BIGINT PRIMARY KEY, owner TEXT, "
                   f"e EMBEDDING({dim}))")
    db.execute("ALTER TABLE app.indexed CREATE INDEX e USING COSINE")


def both(db, template: str, user: str = "alice", params=None) -> tuple[dict, dict, int]:
    """The rows of the plain and the indexed table, and how many indexes were built."""
    built = db.runner.vectors.built
    plain = rows(db, template.format(t="app.plain"), user, params)
    indexed = rows(db, template.format(t="app.indexed"), user, params)
    return plain, indexed, db.runner.vectors.built - built


small_vectors = hs.lists(hs.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]), min_size=3, max_size=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vectors=hs.lists(hs.one_of(hs.none(), small_vectors), min_size=1, max_size=40),
       query=small_vectors, k=hs.integers(1, 12), offset=hs.integers(0, 3),
       by_alias=hs.booleans())
def test_index_results_equal_brute_force(vectors, query, k, offset, by_alias):
    """Ties (repeated vectors), NULL and zero vectors, OFFSET, and ORDER BY an alias."""
    with kalam_engine.connect(":memory:") as db:
        twin_tables(db, 3)
        for table in ("app.plain", "app.indexed"):
            # ids run against the row order, so ties at the k-th distance matter
            load(db, table, "alice", list(range(len(vectors), 0, -1)), vectors, 3)
        order = "d" if by_alias else f"COSINE_DISTANCE(e, '{vec(query)}')"
        sql = (f"SELECT id, COSINE_DISTANCE(e, '{vec(query)}') AS d FROM {{t}} "
               f"ORDER BY {order}, id LIMIT {k} OFFSET {offset}")
        plain, indexed, _ = both(db, sql)
        assert indexed == plain


def test_index_is_used_and_narrows(db):
    rng = np.random.default_rng(3)
    twin_tables(db, 8)
    vectors = rng.standard_normal((500, 8))
    for table in ("app.plain", "app.indexed"):
        load(db, table, "alice", list(range(500)), vectors, 8)
    query = vec(rng.standard_normal(8))
    sql = f"SELECT id, COSINE_DISTANCE(e, '{query}') AS d FROM {{t}} ORDER BY d LIMIT 5"
    plain, indexed, built = both(db, sql)
    assert indexed == plain and built == 1
    want = np.argsort([cosine(v, json.loads(query)) for v in vectors])[:5]
    assert indexed["id"] == want.tolist()
    _, again, built = both(db, sql)  # unchanged rows: the index is reused
    assert again == plain and built == 0
    # $n parameters (str and list) take the same path
    sql_p = "SELECT id FROM {t} ORDER BY COSINE_DISTANCE(e, $1) LIMIT 5"
    for param in (query, json.loads(query)):
        plain_p, indexed_p, _ = both(db, sql_p, params=[param])
        assert indexed_p == plain_p and indexed_p["id"] == want.tolist()


def test_index_never_returns_another_users_rows(db):
    twin_tables(db, 2)
    for table in ("app.plain", "app.indexed"):
        load(db, table, "alice", [1, 2, 3], [[0, 1], [1, 1], [-1, 0]], 2)
        load(db, table, "bob", [1, 2, 3, 4], [[1, 0], [1, 0.01], [1, 0.02], [1, 0.03]], 2)
    sql = "SELECT id, owner FROM {t} ORDER BY COSINE_DISTANCE(e, '[1,0]') LIMIT 2"
    plain, indexed, built = both(db, sql, user="alice")
    assert indexed == plain == {"id": [2, 1], "owner": ["alice", "alice"]} and built == 1
    plain, indexed, _ = both(db, sql, user="bob")
    assert indexed == plain == {"id": [1, 2], "owner": ["bob", "bob"]}
    plain, indexed, _ = both(db, sql, user="carol")
    assert indexed == plain == {"id": [], "owner": []}


def test_index_follows_writes_and_flush(disk_db):
    db = disk_db
    twin_tables(db, 2)
    for table in ("app.plain", "app.indexed"):
        load(db, table, "alice", list(range(20)), [[1, i] for i in range(20)], 2)
    sql = "SELECT id FROM {t} ORDER BY COSINE_DISTANCE(e, '[1,0]'), id LIMIT 3"

    def check(expected: list[int]) -> None:
        plain, indexed, _ = both(db, sql)
        assert plain["id"] == indexed["id"] == expected

    check([0, 1, 2])
    for t in ("app.plain", "app.indexed"):
        db.execute(f"INSERT INTO {t} (id, owner, e) VALUES (100, 'alice', '[1,1.5]')",
                   user="alice")
    check([0, 1, 100])
    for t in ("app.plain", "app.indexed"):
        db.execute(f"UPDATE {t} SET e = '[0,1]' WHERE id = 0", user="alice")
    check([1, 100, 2])
    for t in ("app.plain", "app.indexed"):
        db.execute(f"DELETE FROM {t} WHERE id = 1", user="alice")
    check([100, 2, 3])
    for t in ("app.plain", "app.indexed"):
        db.execute(f"STORAGE FLUSH TABLE {t}")
    check([100, 2, 3])
    for t in ("app.plain", "app.indexed"):
        db.execute(f"DELETE FROM {t} WHERE id = 100", user="alice")
        db.execute(f"INSERT INTO {t} (id, owner, e) VALUES (200, 'alice', '[1,0]')",
                   user="alice")
    check([200, 2, 3])


@pytest.mark.parametrize("shape", [
    "SELECT id FROM {t} WHERE id > 5 ORDER BY COSINE_DISTANCE(e, '[1,0]') LIMIT 3",
    "SELECT id FROM {t} ORDER BY COSINE_DISTANCE(e, '[1,0]') DESC LIMIT 3",
    "SELECT id FROM {t} ORDER BY COSINE_DISTANCE(e, '[1,0]') NULLS FIRST LIMIT 3",
    "SELECT id, row_number() OVER (ORDER BY id) AS r FROM {t} "
    "ORDER BY COSINE_DISTANCE(e, '[1,0]') LIMIT 3",
    "SELECT id FROM {t} WHERE id IN (SELECT id FROM {t} WHERE id < 9) "
    "ORDER BY COSINE_DISTANCE(e, '[1,0]') LIMIT 3",
])
def test_other_shapes_scan_everything(db, shape):
    twin_tables(db, 2)
    vectors = [None if i % 7 == 0 else [1, i % 5] for i in range(20)]
    for table in ("app.plain", "app.indexed"):
        load(db, table, "alice", list(range(20)), vectors, 2)
    plain, indexed, built = both(db, shape)
    assert indexed == plain and built == 0
