"""The primary-key fast path answers exactly what DataFusion answers, or steps aside."""

from __future__ import annotations

import pytest
from fast_paths import answers_both_ways
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import kalam_engine
from kalam_engine import KalamError
from kalam_engine.query.point_lookup import point_lookup_shape, run_point_lookup


@pytest.mark.parametrize("sql", [
    "SELECT * FROM app.t WHERE id = $1",
    "select id, body from app.t where id=$1;",
    "SELECT body FROM t WHERE 7 = id",
    "SELECT * FROM app.t WHERE id = -3",
    "SELECT * FROM app.t WHERE name = 'it''s'",
])
def test_shapes_recognised(sql):
    assert point_lookup_shape(sql) is not None


@pytest.mark.parametrize("sql", [
    "SELECT * FROM app.t WHERE id = $1 OR id = 2",
    "SELECT * FROM app.t WHERE id > $1",
    "SELECT * FROM app.t WHERE id = $1 ORDER BY body",
    "SELECT * FROM app.t WHERE id = $1 LIMIT 1",
    "SELECT DISTINCT id FROM app.t WHERE id = 1",
    "SELECT count(*) FROM app.t WHERE id = 1",
    "SELECT id AS x FROM app.t WHERE id = 1",
    "SELECT t.id FROM app.t WHERE id = 1",
    "SELECT * FROM app.t t WHERE id = 1",
    'SELECT * FROM app."T" WHERE id = 1',
    'SELECT * FROM app.t WHERE "Id" = 1',
    "SELECT * FROM app.t a JOIN app.u b ON a.id = b.id WHERE a.id = 1",
    "SELECT * FROM app.t WHERE id = 1.5",
    "SELECT * FROM app.t WHERE id = 1 AND _deleted = true",
    "SELECT _deleted FROM app.t WHERE id = 1",
    "WITH x AS (SELECT 1) SELECT * FROM app.t WHERE id = 1",
    "SELECT * FROM app:t WHERE id = 1",
    "SELECT id, id FROM app.t WHERE id = 1",
    "SELECT * FROM app.t WHERE id = upper('a')",
    "SELECT * FROM app.t",
    "SELECT id FROM app.t LIMIT 1",
])
def test_other_shapes_left_to_datafusion(sql):
    assert point_lookup_shape(sql) is None


@pytest.fixture
def lookups(tmp_path):
    db = kalam_engine.connect(tmp_path / "data")
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, body TEXT, n INT)")
    db.execute("CREATE SHARED TABLE app.s (name TEXT PRIMARY KEY, v DOUBLE) "
               "WITH (ACCESS_LEVEL='PRIVATE')")
    db.execute("CREATE STREAM TABLE app.ev (id INT PRIMARY KEY, kind TEXT) "
               "WITH (TTL_SECONDS=3600)")
    yield db
    db.close()


def test_fast_path_is_taken_and_scoped_to_the_user(lookups):
    db = lookups
    db.execute("INSERT INTO app.t VALUES (1, 'alice''s', 10)", user="alice")
    db.execute("INSERT INTO app.t VALUES (1, 'bob''s', 20)", user="bob")
    shape = point_lookup_shape("SELECT * FROM app.t WHERE id = $1")
    rows = run_point_lookup(db.runner.resolver, shape, db.context("alice"), [1])
    assert rows is not None and rows["body"].to_pylist() == ["alice's"]
    assert db.execute("SELECT body FROM app.t WHERE id = 1", user="bob").to_arrow()[
        "body"].to_pylist() == ["bob's"]
    assert db.execute("SELECT body FROM app.t WHERE id = 1", user="carol").row_count == 0


def test_same_answers_and_errors_as_datafusion(lookups):
    db = lookups
    db.execute("INSERT INTO app.t VALUES (1, 'a', 1), (2, 'b', 2), (-3, 'c', 3)", user="u")
    db.execute("UPDATE app.t SET body = 'b2' WHERE id = 2", user="u")
    db.execute("DELETE FROM app.t WHERE id = 1", user="u")
    db.execute("INSERT INTO app.s VALUES ('k', 1.5)")
    db.execute("INSERT INTO app.ev VALUES (5, 'click')", user="u")
    cases = [
        ("SELECT * FROM app.t WHERE id = $1", "u", [2]),
        ("SELECT * FROM app.t WHERE id = $1", "u", [1]),          # deleted
        ("SELECT n, body FROM app.t WHERE id = -3", "u", None),
        ("SELECT * FROM app.t WHERE id = $1", "u", ["2"]),        # coerced by DataFusion
        ("SELECT * FROM app.t WHERE id = $1", "u", [2**70]),      # out of range
        ("SELECT * FROM app.t WHERE id = $2", "u", [2]),          # missing parameter
        ("SELECT nope FROM app.t WHERE id = 2", "u", None),       # unknown column
        ("SELECT * FROM app.nope WHERE id = 2", "u", None),       # unknown table
        ("SELECT * FROM app.s WHERE name = 'k'", None, None),
        ("SELECT * FROM app.s WHERE name = 'k'", "u", None),      # private: denied
        ("SELECT * FROM app.ev WHERE id = 5", "u", None),
        ("SELECT * FROM system.users WHERE user_id = 'root'", "u", None),
    ]
    for sql, user, params in cases:
        fast, slow = answers_both_ways(db, sql, user, params)
        assert fast == slow, sql


def test_flushed_rows_and_reopen(tmp_path):
    path = tmp_path / "data"
    with kalam_engine.connect(path) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, body TEXT)")
        for batch in range(3):
            values = ", ".join(f"({batch * 10 + i}, 'v{batch}-{i}')" for i in range(10))
            db.execute(f"INSERT INTO app.t VALUES {values}", user="u")
            db.execute("STORAGE FLUSH TABLE app.t")
        db.execute("DELETE FROM app.t WHERE id = 12", user="u")
        db.execute("UPDATE app.t SET body = 'new' WHERE id = 25", user="u")
    with kalam_engine.connect(path) as db:  # cold: the lookup reads only the segments needed
        for key in (3, 12, 25, 29, 99):
            fast, slow = answers_both_ways(db, "SELECT * FROM app.t WHERE id = $1", "u", [key])
            assert fast == slow, key
        assert db.execute("SELECT body FROM app.t WHERE id = 25", user="u").to_arrow()[
            "body"].to_pylist() == ["new"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=hs.lists(hs.tuples(hs.sampled_from(["insert", "update", "delete", "flush"]),
                              hs.sampled_from(["u1", "u2"]), hs.integers(0, 6)),
                    max_size=25),
       probes=hs.lists(hs.tuples(hs.sampled_from(["u1", "u2", "u3"]), hs.integers(-1, 7)),
                       min_size=1, max_size=8))
def test_property_fast_path_equals_datafusion(ops, probes):
    with kalam_engine.connect(":memory:") as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.t (id INT PRIMARY KEY, body TEXT)")
        for op, user, key in ops:
            try:
                if op == "insert":
                    db.execute("INSERT INTO app.t VALUES ($1, $2)", user=user,
                               params=[key, f"{user}-{key}"])
                elif op == "update":
                    db.execute("UPDATE app.t SET body = body || '+' WHERE id = $1", user=user,
                               params=[key])
                elif op == "delete":
                    db.execute("DELETE FROM app.t WHERE id = $1", user=user, params=[key])
                else:
                    db.execute("STORAGE FLUSH TABLE app.t")
            except KalamError:
                pass  # duplicate keys, flushing nothing: the model is DataFusion's answer
        for user, key in probes:
            fast, slow = answers_both_ways(db, "SELECT * FROM app.t WHERE id = $1", user, [key])
            assert fast == slow


def test_repeated_lookups_follow_writes(lookups):
    """After a few lookups on an unchanged partition a key index answers them; every write,
    update and delete is still seen at once."""
    db = lookups
    db.execute("INSERT INTO app.t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)", user="u")

    def body(key: int) -> list:
        return db.execute("SELECT body FROM app.t WHERE id = $1", user="u",
                          params=[key]).to_arrow()["body"].to_pylist()

    for _ in range(12):
        assert body(2) == ["b"] and body(9) == []
    db.execute("UPDATE app.t SET body = 'b2' WHERE id = 2", user="u")
    db.execute("INSERT INTO app.t VALUES (9, 'new', 9)", user="u")
    for _ in range(12):
        assert body(2) == ["b2"] and body(9) == ["new"] and body(1) == ["a"]
    db.execute("DELETE FROM app.t WHERE id = 2", user="u")
    for _ in range(12):
        assert body(2) == [] and body(3) == ["c"]
    assert db.execute("SELECT * FROM app.t WHERE id = 3", user="other").row_count == 0


def test_partition_key_index_is_built_and_dropped():
    import pyarrow as pa

    from kalam_engine.storage.partition import INDEX_AFTER, Partition

    schema = pa.schema([("id", pa.int64()), ("v", pa.string()), ("_seq", pa.int64()),
                        ("_deleted", pa.bool_())])
    part = Partition("id")
    part.apply(pa.table({"id": [1, 2], "v": ["a", "b"], "_seq": [1, 2],
                         "_deleted": [False, False]}, schema=schema), versions=False)
    for _ in range(INDEX_AFTER + 1):
        assert part.lookup(schema, pa.scalar(2, pa.int64()))["v"].to_pylist() == ["b"]
    assert part._index is not None
    part.apply(pa.table({"id": [2], "v": ["b2"], "_seq": [3], "_deleted": [False]},
                        schema=schema), versions=True)
    assert part._index is None
    assert part.lookup(schema, pa.scalar(2, pa.int64()))["v"].to_pylist() == ["b2"]
