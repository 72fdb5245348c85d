"""Live queries: snapshot then changes in commit order, isolation, filters, overflow, close."""

from __future__ import annotations

import contextlib
import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import kalam_engine
from kalam_engine.model.context import TableId
from kalam_engine.model.errors import (
    ConstraintError,
    ExecutionError,
    InvalidParameterError,
    PermissionDeniedError,
    ResourceLimitError,
    TableNotFoundError,
    UnsupportedError,
)


def drain(sub, timeout: float = 0.0) -> list:
    events = []
    while (event := sub.next_event(timeout)) is not None:
        events.append(event)
    return events


def changes(sub) -> list[tuple]:
    """(type, rows, old_values) of the queued events, as Python lists."""
    return [(e.type, e.rows.to_pylist() if e.rows is not None else None,
             e.old_values.to_pylist() if e.old_values is not None else None)
            for e in drain(sub)]


def strip_seq(rows):
    return None if rows is None else [{k: v for k, v in r.items() if k != "_seq"} for r in rows]


@pytest.fixture
def items(db):
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.items (id INT PRIMARY KEY, name TEXT, n INT)")
    db.execute("CREATE SHARED TABLE app.board (id INT PRIMARY KEY, name TEXT, n INT) "
               "WITH (ACCESS_LEVEL='PUBLIC')")
    return db


def test_snapshot_in_batches_then_changes_with_projection(items):
    db = items
    db.execute("INSERT INTO app.items VALUES (1,'a',1),(2,'b',2),(3,'c',3)", user="alice")
    with db.subscribe("SELECT name FROM app.items", user="alice", batch_size=2) as sub:
        first, second = sub.next_event(0), sub.next_event(0)
        assert (first.type, first.batch_num, first.has_more) == ("initial_data_batch", 0, True)
        assert (second.batch_num, second.has_more) == (1, False)
        snap = first.rows.to_pylist() + second.rows.to_pylist()
        assert [r["name"] for r in snap] == ["a", "b", "c"]
        assert first.rows.column_names == ["name", "id", "_seq"]  # selected + key + _seq
        assert sub.next_event(0) is None
        db.execute("INSERT INTO app.items VALUES (4,'d',4)", user="alice")
        db.execute("UPDATE app.items SET name = 'bb' WHERE id = 2", user="alice")
        db.execute("UPDATE app.items SET n = 20 WHERE id = 2", user="alice")
        db.execute("DELETE FROM app.items WHERE id = 1", user="alice")
        events = drain(sub)
        got = [(e.type, strip_seq(e.rows.to_pylist() if e.rows else None),
                strip_seq(e.old_values.to_pylist() if e.old_values else None)) for e in events]
        assert got == [
            ("insert", [{"name": "d", "id": 4}], None),
            ("update", [{"name": "bb", "id": 2}], [{"id": 2, "name": "b"}]),
            ("update", [{"name": "bb", "id": 2}], [{"id": 2}]),  # n is not selected
            ("delete", None, [{"name": "a", "id": 1}]),
        ]
        seqs = [e.seq for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == 4
        assert all(e.seq > sub.last_seq for e in events)
        # the update's old_values carry the previous version's _seq; rows the new one
        assert events[1].old_values["_seq"][0].as_py() == snap[1]["_seq"]
        assert events[1].rows["_seq"][0].as_py() == events[1].seq


def test_filter_moves_rows_in_and_out(items):
    db = items
    db.execute("INSERT INTO app.board VALUES (1,'a',1),(2,'b',5)")
    sub = db.subscribe("SELECT * FROM app.board WHERE n > 2 AND name LIKE '%'", user="u")
    assert [r["id"] for r in sub.next_event(0).rows.to_pylist()] == [2]
    db.execute("UPDATE app.board SET n = 9 WHERE id = 1")   # moves in: insert
    db.execute("UPDATE app.board SET n = 0 WHERE id = 2")   # moves out: delete
    db.execute("UPDATE app.board SET name = 'x' WHERE id = 2")  # stays out: nothing
    db.execute("UPDATE app.board SET name = 'y' WHERE id = 1")  # stays in: update
    db.execute("INSERT INTO app.board VALUES (3,'c',0)")    # never in: nothing
    got = [(t, strip_seq(r), strip_seq(o)) for t, r, o in changes(sub)]
    assert got == [
        ("insert", [{"id": 1, "name": "a", "n": 9}], None),
        ("delete", None, [{"id": 2, "name": "b", "n": 5}]),
        ("update", [{"id": 1, "name": "y", "n": 9}], [{"id": 1, "name": "a"}]),
    ]
    sub.close()


def test_one_update_statement_keeps_commit_order_across_kinds(items):
    db = items
    db.execute("INSERT INTO app.board VALUES (1,'a',1),(2,'b',5),(3,'c',9),(4,'d',4)")
    sub = db.subscribe("SELECT id FROM app.board WHERE n >= 4", user="u")
    drain(sub)
    # 1->9 moves in, 5->5 stays, 9->1 moves out, 4->6 stays
    db.execute("UPDATE app.board SET n = 10 - n WHERE true")
    events = drain(sub)
    assert sorted((e.type, r["id"]) for e in events
                  for r in (e.rows or e.old_values).to_pylist()) == \
        [("delete", 3), ("insert", 1), ("update", 2), ("update", 4)]
    seqs = [r["_seq"] for e in events for r in (e.rows or e.old_values).to_pylist()]
    assert seqs == sorted(seqs)


def test_user_and_stream_subscriptions_see_only_their_partition(items):
    db = items
    db.execute("CREATE STREAM TABLE app.ev (id INT, body TEXT) WITH (TTL_SECONDS=3600)")
    alice = db.subscribe("SELECT * FROM app.items", user="alice")
    alice_ev = db.subscribe("SELECT body FROM app.ev", user="alice")
    drain(alice), drain(alice_ev)
    db.execute("INSERT INTO app.items VALUES (1,'bob',1)", user="bob")
    db.execute("INSERT INTO app.ev VALUES (1,'bob')", user="bob")
    db.execute("INSERT INTO app.items VALUES (1,'alice',1)", user="alice")
    db.execute("INSERT INTO app.ev VALUES (1,'alice')", user="alice")
    assert [strip_seq(r) for _t, r, _o in changes(alice)] == [[{"id": 1, "name": "alice",
                                                                 "n": 1}]]
    assert [strip_seq(r) for _t, r, _o in changes(alice_ev)] == [[{"body": "alice"}]]
    root = db.subscribe("SELECT * FROM app.items")  # no role bypasses USER isolation
    assert root.next_event(0).rows.num_rows == 0
    # a partition nobody subscribed to costs no live-query work
    live = db.storage.existing_store(TableId("app", "items")).live
    assert live.wants("alice") and not live.wants("bob")


def test_shared_access_levels_and_system_tables_need_dba(items):
    db = items
    db.execute("CREATE SHARED TABLE app.secret (id INT PRIMARY KEY, v TEXT)")  # private
    db.execute("CREATE USER dba1 WITH PASSWORD 'password1' ROLE dba")
    db.execute("CREATE USER svc WITH PASSWORD 'password1' ROLE service")
    with pytest.raises(PermissionDeniedError):
        db.subscribe("SELECT * FROM app.secret", user="alice")
    db.subscribe("SELECT * FROM app.secret", user="svc").close()
    db.subscribe("SELECT * FROM app.board", user="alice").close()  # public
    with pytest.raises(PermissionDeniedError):
        db.subscribe("SELECT * FROM system.users", user="svc")
    with pytest.raises(PermissionDeniedError):
        db.execute("SELECT * FROM system.live", user="alice")
    with db.subscribe("SELECT user_id, role FROM system.users", user="dba1") as sub:
        assert "root" in [r["user_id"] for r in sub.next_event(0).rows.to_pylist()]
    assert len(db.live) == 0  # rejected subscriptions left nothing behind


def test_system_live_lists_active_subscriptions(items):
    db = items
    sub = db.subscribe("SELECT id FROM app.items WHERE n > 1", user="alice", last_rows=5,
                       subscription_id="s1")
    db.execute("INSERT INTO app.items VALUES (1,'a',2)", user="alice")
    rows = db.execute("SELECT * FROM system.live").to_arrow().to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert (row["subscription_id"], row["namespace_id"], row["table_name"], row["user_id"],
            row["status"], row["changes"], row["node_id"]) == \
        ("s1", "app", "items", "alice", "loading", 1, 1)
    assert row["live_id"] == "alice-local-s1" and row["options"] == '{"last_rows": 5}'
    assert row["query"] == "SELECT id FROM app.items WHERE n > 1"
    drain(sub)
    assert db.execute("SELECT status FROM system.live").to_arrow()["status"].to_pylist() == \
        ["active"]
    with pytest.raises(InvalidParameterError):
        db.subscribe("SELECT id FROM app.items", user="alice", subscription_id="s1")
    sub.close()
    assert db.execute("SELECT count(*) AS c FROM system.live").to_arrow()["c"][0].as_py() == 0


def test_subscribe_sql_form(items):
    db = items
    db.execute("INSERT INTO app.items VALUES (1,'a',1),(2,'b',2),(3,'c',3)", user="alice")
    result = db.execute("SUBSCRIBE TO app.items WHERE n > 1 OPTIONS (last_rows=1, "
                        "batch_size=10)", user="alice")
    row = result.to_arrow().to_pylist()[0]
    assert row["status"] == "active" and row["total_rows"] == 1
    sub = result.subscription
    assert [r["id"] for r in sub.next_event(0).rows.to_pylist()] == [3]
    sub.close()
    sel = db.execute("SUBSCRIBE TO SELECT name FROM app.items OPTIONS (from=0)", user="alice")
    assert sel.subscription.next_event(0).rows.column_names == ["name", "id", "_seq"]
    sel.subscription.close()
    for bad, error in [
        ("SUBSCRIBE TO app.items OPTIONS (colour=1)", InvalidParameterError),
        ("SUBSCRIBE TO SELECT * FROM app.items ORDER BY id", UnsupportedError),
        ("SUBSCRIBE TO SELECT * FROM app.items LIMIT 1", UnsupportedError),
        ("SUBSCRIBE TO SELECT count(*) FROM app.items", UnsupportedError),
        ("SUBSCRIBE TO SELECT * FROM app.items a JOIN app.board b ON a.id = b.id",
         UnsupportedError),
        ("SUBSCRIBE TO SELECT nope FROM app.items", InvalidParameterError),
        ("SUBSCRIBE TO app.items OPTIONS (last_rows=20, batch_size=10)", UnsupportedError),
        ("SUBSCRIBE TO app.items OPTIONS (batch_size=5000)", InvalidParameterError),
        ("SUBSCRIBE TO app.nothing", TableNotFoundError),
    ]:
        with pytest.raises(error):
            db.execute(bad, user="alice")
    assert len(db.live) == 0


def test_last_rows_and_from_seq(items):
    db = items
    for i in range(5):
        db.execute(f"INSERT INTO app.items VALUES ({i}, 'r{i}', {i})", user="alice")
    with db.subscribe("SELECT id FROM app.items", user="alice", last_rows=2) as sub:
        rows = sub.next_event(0).rows.to_pylist()
        assert [r["id"] for r in rows] == [3, 4]
    seq2 = rows[0]["_seq"]
    db.execute("UPDATE app.items SET n = 0 WHERE id = 1", user="alice")
    with db.subscribe("SELECT id FROM app.items", user="alice", from_seq=seq2) as sub:
        assert [r["id"] for r in sub.next_event(0).rows.to_pylist()] == [4, 1]


def test_overflow_ends_the_slow_subscription_without_blocking_writers(items):
    db = items
    slow = db.subscribe("SELECT id FROM app.board", user="u", max_queue=3)
    fast = db.subscribe("SELECT id FROM app.board", user="u")
    drain(slow)
    for i in range(6):  # each INSERT returns: the writer never waits for the reader
        db.execute(f"INSERT INTO app.board VALUES ({i}, 'x', 0)")
    assert [e.type for e in [slow.next_event(0) for _ in range(3)]] == ["insert"] * 3
    with pytest.raises(ResourceLimitError, match="fell behind"):
        slow.next_event(0)
    assert slow.status == "failed"
    assert len(drain(fast)) == 1 + 6  # the other subscription is unaffected
    assert db.execute("SELECT subscription_id FROM system.live").to_arrow().num_rows == 1
    fast.close()


def test_close_wakes_a_waiting_reader_and_ends_iteration(items):
    db = items
    sub = db.subscribe("SELECT id FROM app.board", user="u")
    seen: list = []
    reader = threading.Thread(target=lambda: seen.extend(sub))
    reader.start()
    db.execute("INSERT INTO app.board VALUES (1, 'x', 0)")
    while len(seen) < 2:
        threading.Event().wait(0.01)
    sub.close()
    reader.join(10)
    assert not reader.is_alive()
    assert [e.type for e in seen] == ["initial_data_batch", "insert"]
    assert sub.next_event(0) is None and sub.status == "closed"
    db.execute("INSERT INTO app.board VALUES (2, 'x', 0)")  # writes go on
    store = db.storage.existing_store(TableId("app", "board"))
    assert not store.live.wants("")  # a closed subscription costs writers nothing


def test_callback_delivery_and_engine_close(tmp_path):
    db = kalam_engine.connect(tmp_path / "data")
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE SHARED TABLE app.t (id INT PRIMARY KEY, v TEXT) "
               "WITH (ACCESS_LEVEL='PUBLIC')")
    got: list = []
    done = threading.Event()

    def on_event(event):
        got.append(event)
        if len(got) == 3:
            done.set()

    sub = db.subscribe("SELECT v FROM app.t", user="u", callback=on_event)
    with pytest.raises(InvalidParameterError):
        sub.next_event(0)
    db.execute("INSERT INTO app.t VALUES (1, 'a')")
    db.execute("DELETE FROM app.t WHERE id = 1")
    assert done.wait(10)
    assert [e.type for e in got] == ["initial_data_batch", "insert", "delete"]
    other = db.subscribe("SELECT v FROM app.t", user="u")
    db.close()
    assert other.closed and sub.closed


def test_drop_and_alter_end_subscriptions(items):
    db = items
    dropped = db.subscribe("SELECT id FROM app.board", user="u")
    altered = db.subscribe("SELECT id FROM app.items", user="alice")
    drain(dropped), drain(altered)
    db.execute("ALTER TABLE app.items ADD COLUMN extra TEXT")
    db.execute("INSERT INTO app.items (id, name, n) VALUES (1, 'a', 1)", user="alice")
    with pytest.raises(ExecutionError, match="schema changed"):
        altered.next_event(0)
    db.execute("DROP TABLE app.board")
    with pytest.raises(TableNotFoundError):
        dropped.next_event(0)
    assert len(db.live) == 0


def _replay(state: dict, events: list) -> dict:
    """Apply a subscription's events to a model of the rows it watches (key -> row)."""
    for e in events:
        if e.type in ("initial_data_batch", "insert"):
            for r in e.rows.to_pylist():
                assert e.type == "initial_data_batch" or r["id"] not in state, "duplicate"
                state[r["id"]] = r
        elif e.type == "update":
            for r in e.rows.to_pylist():
                assert r["id"] in state, "update of a row never delivered"
                state[r["id"]] = r
        else:
            for r in e.old_values.to_pylist():
                assert state.pop(r["id"], None) is not None, "delete of a row never delivered"
    return state


def _expected(db, where: str) -> dict:
    rows = db.execute(f"SELECT id, name, n, _seq FROM app.board WHERE {where}").to_arrow()
    return {r["id"]: r for r in rows.to_pylist()}


def _random_write(db, rnd: random.Random) -> None:
    key = rnd.randrange(20)
    op = rnd.random()
    if op < 0.5:
        _insert(db, key, rnd)
    elif op < 0.8:
        db.execute(f"UPDATE app.board SET n = {rnd.randrange(10)}, name = 'u{key}' "
                   f"WHERE id >= {key} AND id < {key + 3}")
    else:
        db.execute(f"DELETE FROM app.board WHERE id = {key}")


def _insert(db, key: int, rnd: random.Random) -> None:
    with contextlib.suppress(ConstraintError):
        db.execute(f"INSERT INTO app.board VALUES ({key}, 'k{key}', {rnd.randrange(10)})")


def test_nothing_lost_or_duplicated_across_the_boundary_under_concurrent_writes(items):
    """Writers run while subscriptions start: the snapshot plus the events, replayed, always
    equal the query's current rows, and event _seq only grows."""
    db = items
    stop = threading.Event()
    failures: list = []

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            while not stop.is_set():
                _random_write(db, rnd)
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(3)]
    for t in threads:
        t.start()
    subs = []
    try:
        for i in range(12):
            where = "n >= 5" if i % 2 else "name LIKE 'u%' OR n < 3"
            subs.append((where, db.subscribe(f"SELECT id, name, n FROM app.board WHERE {where}",
                                             user="u", batch_size=3)))
            threading.Event().wait(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures
    for where, sub in subs:
        events = drain(sub)
        seqs = [e.seq for e in events if e.type != "initial_data_batch"]
        assert seqs == sorted(seqs) and all(s > sub.last_seq for s in seqs)
        assert _replay({}, events) == _expected(db, where)
        sub.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=hs.integers(0, 2**32), before=hs.integers(0, 15), after=hs.integers(0, 25),
       where=hs.sampled_from(["n >= 5", "n < 3 AND name LIKE 'k%'", "id % 2 = 0", "true"]))
def test_model_snapshot_plus_events_equal_the_query(seed, before, after, where):
    db = kalam_engine.connect(":memory:")
    try:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE SHARED TABLE app.board (id INT PRIMARY KEY, name TEXT, n INT) "
                   "WITH (ACCESS_LEVEL='PUBLIC')")
        rnd = random.Random(seed)
        for _ in range(before):
            _random_write(db, rnd)
        sub = db.subscribe(f"SELECT * FROM app.board WHERE {where}", user="u", batch_size=4)
        for _ in range(after):
            _random_write(db, rnd)
        assert _replay({}, drain(sub)) == _expected(db, where)
    finally:
        db.close()
