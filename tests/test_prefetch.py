"""Tables read before planning and served as MemTables give exactly the lazy path's answers."""

from __future__ import annotations

import pytest
from fast_paths import answers_both_ways

import kalam_engine
from kalam_engine import KalamError
from kalam_engine.query.prefetch import table_references


@pytest.mark.parametrize(("sql", "refs"), [
    ("SELECT * FROM t", ((None, "t"),)),
    ("SELECT * FROM App.T a JOIN app.u b ON a.id = b.id", (("app", "t"), ("app", "u"))),
    ("WITH t AS (SELECT 1 AS x) SELECT * FROM t, app.t", (("app", "t"),)),
    ("SELECT * FROM kalam.app.t", (("app", "t"),)),
    ("SELECT * FROM other.app.t", ()),
    ('SELECT * FROM app."Mixed"', ()),
    ('SELECT * FROM "app"."t"', (("app", "t"),)),
    ("SELECT (SELECT max(id) FROM app.u) FROM app.t UNION ALL SELECT 1",
     (("app", "u"), ("app", "t"))),
    ("SELECT 'FROM app.secret' AS s", ()),
    ("SELECT * FROM generate_series(1, 3)", ()),
    ("this is not sql ((", ()),
])
def test_table_references(sql, refs):
    assert sorted(table_references(sql), key=str) == sorted(refs, key=str)


def _sorted(table):
    if isinstance(table, str):
        return table
    return table.sort_by([(name, "ascending") for name in table.column_names])


@pytest.fixture
def db(tmp_path):
    engine = kalam_engine.connect(tmp_path / "data")
    engine.execute("CREATE NAMESPACE app")
    engine.execute("CREATE USER TABLE app.msg (id BIGINT PRIMARY KEY, room TEXT, body TEXT)")
    engine.execute("CREATE USER TABLE app.empty (id BIGINT PRIMARY KEY, v INT)")
    engine.execute("CREATE SHARED TABLE app.rooms (room TEXT PRIMARY KEY, title TEXT) "
                   "WITH (ACCESS_LEVEL='PUBLIC')")
    engine.execute("CREATE SHARED TABLE app.secret (k TEXT PRIMARY KEY, v TEXT)")
    engine.execute("INSERT INTO app.rooms VALUES ('r1', 'General'), ('r2', 'Random')")
    engine.execute("INSERT INTO app.secret VALUES ('k', 'root only')")
    for user, n in (("alice", 5), ("bob", 3)):
        for i in range(n):
            engine.execute("INSERT INTO app.msg VALUES ($1, $2, $3)", user=user,
                           params=[i, f"r{i % 2 + 1}", f"{user} {i}"])
    engine.execute("DELETE FROM app.msg WHERE id = 0", user="alice")
    yield engine
    engine.close()


QUERIES = [
    "SELECT * FROM app.msg",
    "SELECT * FROM app.msg WHERE id > 1 ORDER BY id DESC",
    "SELECT m.body, r.title FROM app.msg m JOIN app.rooms r ON m.room = r.room",
    "WITH mine AS (SELECT room, count(*) AS n FROM app.msg GROUP BY room) "
    "SELECT * FROM mine ORDER BY room",
    "SELECT body FROM app.msg WHERE room IN (SELECT room FROM app.rooms WHERE title = 'General')",
    "SELECT id FROM app.msg UNION ALL SELECT id FROM app.msg ORDER BY id",
    "SELECT a.id, b.id AS prev FROM app.msg a JOIN app.msg b ON a.id = b.id + 1",
    "SELECT * FROM app.empty ORDER BY id",
    "SELECT count(*) FROM app.empty",
    "SELECT id, _deleted FROM app.msg",
    "SELECT row_number() OVER (ORDER BY id DESC) AS r, id FROM app.msg",
    "SELECT * FROM app.secret",
    "SELECT r.title, s.v FROM app.rooms r, app.secret s",
    "SELECT * FROM app.nope",
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'app' "
    "ORDER BY table_name",
    "SELECT user_id FROM system.users",
    "SELECT * FROM msg",
    "EXPLAIN SELECT * FROM app.msg",
]


@pytest.mark.parametrize("user", ["alice", "bob", "carol", None])
def test_same_answers_with_and_without_prefetch(db, user):
    for sql in QUERIES:
        fast, lazy = answers_both_ways(db, sql, user)
        if sql.startswith("EXPLAIN"):
            assert type(fast) is type(lazy), sql  # the plans differ (MemTable vs dataset)
            continue
        if not isinstance(fast, str) and "ORDER BY" not in sql:
            fast, lazy = _sorted(fast), _sorted(lazy)  # a join's row order is not defined
        assert fast == lazy, (sql, fast, lazy)


def test_prefetched_rows_are_the_requests_own(db):
    rows = db.execute("SELECT body FROM app.msg ORDER BY id", user="bob").to_arrow()
    assert rows["body"].to_pylist() == ["bob 0", "bob 1", "bob 2"]
    db.execute("USE app", user="bob")
    assert db.execute("SELECT count(*) AS n FROM msg", user="bob").to_arrow()["n"][0].as_py() == 3
    with pytest.raises(KalamError) as err:  # alice is still in namespace default
        db.execute("SELECT count(*) AS n FROM msg", user="alice")
    assert err.value.code == "TABLE_NOT_FOUND"


def test_unqualified_names_follow_the_request_namespace(db):
    db.execute("CREATE NAMESPACE other")
    db.execute("CREATE USER TABLE other.msg (id BIGINT PRIMARY KEY, body TEXT)")
    db.execute("INSERT INTO other.msg VALUES (99, 'elsewhere')", user="alice")
    db.execute("USE other", user="alice")
    fast, lazy = answers_both_ways(db, "SELECT * FROM msg", "alice")
    assert fast == lazy and fast["id"].to_pylist() == [99]


def test_pooled_sessions_hold_no_request_between_requests(db):
    db.execute("SELECT * FROM app.msg", user="alice")
    with pytest.raises(KalamError):
        db.execute("SELECT * FROM app.secret", user="alice")
    idle = [pair for pairs in db.runner._sessions._idle.values() for pair in pairs]
    assert idle and all(catalog.state is None for _, catalog in idle)
    # the session alice used now serves bob, with bob's rows only
    rows = db.execute("SELECT body FROM app.msg", user="bob").to_arrow()["body"].to_pylist()
    assert rows == ["bob 0", "bob 1", "bob 2"]


def test_concurrent_requests_see_only_their_own_rows(db):
    import threading

    users = [f"user{i}" for i in range(8)]
    for i, user in enumerate(users):
        db.execute("INSERT INTO app.msg VALUES ($1, 'r1', $2)", user=user, params=[i, user])
    wrong: list[str] = []

    def work(user: str) -> None:
        for sql in ("SELECT body FROM app.msg",
                    "SELECT m.body FROM app.msg m JOIN app.rooms r ON m.room = r.room",
                    "SELECT CURRENT_USER() AS body FROM app.msg"):
            for _ in range(15):
                got = db.execute(sql, user=user).to_arrow()["body"].to_pylist()
                if got != [user]:
                    wrong.append(f"{user}: {sql} -> {got}")

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_views_follow_the_partitions_rows():
    import gc

    import pyarrow as pa

    from kalam_engine.query.prefetch import ArrowViews

    views = ArrowViews(capacity=2)
    rows = pa.table({"id": [1, 2]})
    first = views.view(rows)
    assert views.view(rows) is first  # unchanged rows: the same view
    other = pa.table({"id": [3]})
    assert views.view(other) is not first
    del rows
    gc.collect()
    assert len(views) == 1  # the view went with its rows
    for i in range(3):
        views.view(pa.table({"id": [i]}))
    assert len(views) <= 2


def test_new_rows_are_seen_at_once(db):
    before = db.execute("SELECT count(*) AS n FROM app.msg", user="bob").to_arrow()
    db.execute("INSERT INTO app.msg VALUES (50, 'r1', 'new')", user="bob")
    after = db.execute("SELECT count(*) AS n FROM app.msg", user="bob").to_arrow()
    assert after["n"][0].as_py() == before["n"][0].as_py() + 1
    db.execute("UPDATE app.msg SET body = 'changed' WHERE id = 50", user="bob")
    assert db.execute("SELECT body FROM app.msg WHERE id > 40", user="bob").to_arrow()[
        "body"].to_pylist() == ["changed"]
