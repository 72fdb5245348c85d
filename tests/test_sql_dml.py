"""INSERT / UPDATE / DELETE as versions with _seq and _deleted, and their error paths."""

from __future__ import annotations

import pytest

import kalam_engine


def rows(db, sql, user="alice", params=None):
    return db.execute(sql, user=user, params=params).to_arrow().to_pylist()


def test_insert_multi_row_defaults_and_params(chat):
    res = chat.execute("INSERT INTO app.messages (body) VALUES ('a'), ($1), ($2)", user="alice",
                       params=["it's {x}", "'; DROP TABLE app.messages; --"])
    assert res.message == "Inserted 3 row(s)" and res.row_count == 3 and res.as_user == "alice"
    got = rows(chat, "SELECT body, score FROM app.messages")
    assert got == [{"body": "a", "score": 0}, {"body": "it's {x}", "score": 0},
                   {"body": "'; DROP TABLE app.messages; --", "score": 0}]


def test_insert_without_column_list_and_from_select(chat):
    chat.execute("INSERT INTO app.messages VALUES (1, 'one', 5)", user="alice")
    chat.execute("INSERT INTO app.messages (id, body) SELECT id + 100, body || '!' "
                 "FROM app.messages", user="alice")
    assert rows(chat, "SELECT id, body FROM app.messages") == [
        {"id": 1, "body": "one"}, {"id": 101, "body": "one!"}]


def test_insert_errors_write_nothing(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'x')", user="alice")
    cases = [
        ("INSERT INTO app.messages (id, body) VALUES (2, NULL)", "NOT NULL"),
        ("INSERT INTO app.messages (id, body) VALUES (3, 'a'), (3, 'b')", "multiple times"),
        ("INSERT INTO app.messages (id, body) VALUES (1, 'again')", "already exists"),
        ("INSERT INTO app.messages (id, nope) VALUES (4, 'x')", "no column 'nope'"),
        ("INSERT INTO app.messages (id, body) VALUES (5)", r"value\(s\) per row"),
        ("INSERT INTO app.messages (id, body) VALUES ('abc', 'x')", "cannot hold"),
        ("INSERT INTO app.messages (id, body) VALUES (6, 'x') RETURNING id", "RETURNING"),
        ("INSERT INTO app.messages (id, body) VALUES ($1, $2)", "param"),
    ]
    for sql, fragment in cases:
        with pytest.raises(kalam_engine.KalamError, match=fragment):
            chat.execute(sql, user="alice")
    assert rows(chat, "SELECT id FROM app.messages") == [{"id": 1}]


def test_primary_key_is_per_user(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'alice')", user="alice")
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'bob')", user="bob")
    assert rows(chat, "SELECT body FROM app.messages", user="bob") == [{"body": "bob"}]


def test_update_writes_a_new_version(chat):
    chat.execute("INSERT INTO app.messages (id, body, score) VALUES (1, 'x', 1), (2, 'y', 2)",
                 user="alice")
    seq_before = rows(chat, "SELECT _seq FROM app.messages WHERE id = 1")[0]["_seq"]
    res = chat.execute("UPDATE app.messages SET score = score * 10, body = upper(body) "
                       "WHERE score >= $1", user="alice", params=[2])
    assert res.message == "Updated 1 row(s)" and res.row_count == 1
    got = rows(chat, "SELECT id, body, score, _seq FROM app.messages")
    assert [(r["id"], r["body"], r["score"]) for r in got] == [(1, "x", 1), (2, "Y", 20)]
    assert got[0]["_seq"] == seq_before
    assert got[1]["_seq"] > seq_before
    # a non-PK predicate, as KalamDB's smoke test does
    chat.execute("UPDATE app.messages SET body = 'Bobby' WHERE body = 'x'", user="alice")
    assert rows(chat, "SELECT body FROM app.messages WHERE id = 1") == [{"body": "Bobby"}]


def test_update_errors(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'x')", user="alice")
    for sql, fragment in [
        ("UPDATE app.messages SET body = 'y'", "requires a WHERE"),
        ("UPDATE app.messages SET id = 2 WHERE id = 1", "primary key"),
        ("UPDATE app.messages SET body = NULL WHERE id = 1", "NOT NULL"),
        ("UPDATE app.messages SET nope = 1 WHERE id = 1", "no column"),
        ("UPDATE app.messages SET body = 'y' WHERE nope = 1", "nope"),
        ("UPDATE app.nothing SET body = 'y' WHERE id = 1", "does not exist"),
    ]:
        with pytest.raises(kalam_engine.KalamError, match=fragment):
            chat.execute(sql, user="alice")
    assert rows(chat, "SELECT body FROM app.messages") == [{"body": "x"}]


def test_delete_is_a_tombstone_visible_through_deleted(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'x'), (2, 'y')", user="alice")
    res = chat.execute("DELETE FROM app.messages WHERE id IN (SELECT max(id) FROM app.messages)",
                       user="alice")
    assert res.message == "Deleted 1 row(s)"
    assert rows(chat, "SELECT id FROM app.messages") == [{"id": 1}]
    assert rows(chat, "SELECT id, _deleted FROM app.messages WHERE _deleted = true") == [
        {"id": 2, "_deleted": True}]
    with pytest.raises(kalam_engine.KalamError, match="requires a WHERE"):
        chat.execute("DELETE FROM app.messages", user="alice")
    # a tombstoned key may be inserted again
    chat.execute("INSERT INTO app.messages (id, body) VALUES (2, 'back')", user="alice")
    assert rows(chat, "SELECT id, body FROM app.messages") == [
        {"id": 1, "body": "x"}, {"id": 2, "body": "back"}]


def test_dml_only_touches_own_rows(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'a')", user="alice")
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'b')", user="bob")
    assert chat.execute("UPDATE app.messages SET body = 'hacked' WHERE true",
                        user="bob").row_count == 1
    assert chat.execute("DELETE FROM app.messages WHERE true", user="bob").row_count == 1
    assert rows(chat, "SELECT body FROM app.messages") == [{"body": "a"}]


def test_shared_table_writes(chat):
    chat.execute("INSERT INTO app.rooms (id, name) VALUES (1, 'lobby')")
    assert rows(chat, "SELECT name FROM app.rooms", user="alice") == [{"name": "lobby"}]
    with pytest.raises(kalam_engine.PermissionDeniedError):
        chat.execute("INSERT INTO app.rooms (id, name) VALUES (2, 'x')", user="alice")


def test_system_tables_are_read_only(chat):
    for sql in ["INSERT INTO system.namespaces (name) VALUES ('x')",
                "DELETE FROM system.users WHERE true",
                "UPDATE system.tables SET table_name = 'x' WHERE true"]:
        with pytest.raises(kalam_engine.PermissionDeniedError):
            chat.execute(sql)


def test_stream_table_ttl_and_keyless_rows(db):
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE STREAM TABLE app.events (kind TEXT) WITH (TTL_SECONDS=3600)")
    db.execute("INSERT INTO app.events (kind) VALUES ('typing'), ('typing')", user="alice")
    assert db.execute("SELECT kind FROM app.events", user="alice").row_count == 2
    assert db.execute("SELECT kind FROM app.events", user="bob").row_count == 0
    with pytest.raises(kalam_engine.UnsupportedError):
        db.execute("DELETE FROM app.events WHERE kind = 'typing'", user="alice")


def test_multi_statement_returns_last_and_stops_at_first_error(chat):
    res = chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'a'); "
                       "INSERT INTO app.messages (id, body) VALUES (2, 'b; c'); "
                       "SELECT count(*) AS n FROM app.messages", user="alice")
    assert res.to_arrow()["n"].to_pylist() == [2]
    with pytest.raises(kalam_engine.KalamError):
        chat.execute("INSERT INTO app.messages (id, body) VALUES (3, 'c'); "
                     "INSERT INTO app.messages (id, body) VALUES (1, 'dup')", user="alice")
    assert chat.execute("SELECT id FROM app.messages", user="alice").row_count == 3


def test_transactions_are_refused_clearly(chat):
    with pytest.raises(kalam_engine.UnsupportedError, match="commits on its own"):
        chat.execute("BEGIN")


def test_now_into_timestamp_and_datetime_columns(db):
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.t (id INT PRIMARY KEY, d DATETIME, t TIMESTAMP)")
    db.execute("INSERT INTO app.t VALUES (1, NOW(), NOW())", user="alice")
    row = db.execute("SELECT d, t FROM app.t", user="alice").to_arrow().to_pylist()[0]
    assert row["d"] is not None and row["t"] is not None
