"""SELECT on DataFusion through the per-request catalog adapter."""

from __future__ import annotations

import pytest

import kalam_engine


@pytest.fixture
def loaded(chat):
    for user, n in (("alice", 5), ("bob", 3)):
        values = ", ".join(f"({i}, '{user}-{i}', {i * 10})" for i in range(n, 0, -1))
        chat.execute(f"INSERT INTO app.messages (id, body, score) VALUES {values}", user=user)
    chat.execute("INSERT INTO app.rooms (id, name) VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    return chat


def col(db, sql, name, user="alice", params=None):
    return db.execute(sql, user=user, params=params).to_arrow()[name].to_pylist()


def test_default_order_by_primary_key(loaded):
    assert col(loaded, "SELECT id FROM app.messages", "id") == [1, 2, 3, 4, 5]
    assert col(loaded, "SELECT id FROM app.messages LIMIT 2", "id") == [1, 2]
    assert col(loaded, "SELECT id FROM app.messages ORDER BY id DESC LIMIT 2", "id") == [5, 4]
    assert col(loaded, "SELECT count(*) AS n FROM app.messages", "n") == [5]


def test_statements_may_start_with_comments(loaded):
    sql = "-- the newest first\n/* a block\n comment */ SELECT id FROM app.messages"
    assert col(loaded, sql, "id") == [1, 2, 3, 4, 5]  # still gets the default ORDER BY
    with pytest.raises(kalam_engine.KalamError) as err:  # EXPLAIN stays dba-only
        loaded.execute("-- look\nEXPLAIN SELECT * FROM app.messages", user="alice")
    assert err.value.code == "PERMISSION_DENIED"
    assert loaded.execute("/* plan */ EXPLAIN SELECT * FROM app.messages").row_count > 0


def test_no_hidden_limit(chat):
    values = ", ".join(f"({i}, 'm{i}')" for i in range(1500))
    chat.execute(f"INSERT INTO app.messages (id, body) VALUES {values}", user="alice")
    assert chat.execute("SELECT * FROM app.messages", user="alice").row_count == 1500


def test_join_user_with_shared_table(loaded):
    got = col(loaded, "SELECT m.body || '@' || r.name AS x FROM app.messages m "
                      "JOIN app.rooms r ON r.id = m.id ORDER BY m.id", "x", user="bob")
    assert got == ["bob-1@one", "bob-2@two", "bob-3@three"]


def test_cte_subquery_aggregate_window(loaded):
    assert col(loaded, "WITH top AS (SELECT * FROM app.messages WHERE score > 20) "
                       "SELECT sum(score) AS s FROM top", "s") == [120]
    assert col(loaded, "SELECT id FROM app.messages WHERE score = "
                       "(SELECT max(score) FROM app.messages)", "id", user="bob") == [3]
    got = loaded.execute("SELECT id, sum(score) OVER (ORDER BY id) AS running "
                         "FROM app.messages", user="bob").to_arrow().to_pylist()
    assert [r["running"] for r in got] == [10, 30, 60]
    assert col(loaded, "SELECT id % 2 AS odd, count(*) AS n FROM app.messages "
                       "GROUP BY id % 2 ORDER BY odd", "n") == [2, 3]


def test_params_bind_values(loaded):
    assert col(loaded, "SELECT body FROM app.messages WHERE id = $1 OR body = $2", "body",
               params=[2, "alice-4"]) == ["alice-2", "alice-4"]
    assert col(loaded, "SELECT body FROM app.messages WHERE body = $1", "body",
               params=["x' OR '1'='1"]) == []


def test_select_star_has_system_columns(loaded):
    names = loaded.execute("SELECT * FROM app.messages", user="bob").to_arrow().column_names
    assert names == ["id", "body", "score", "_seq", "_deleted"]


def test_functions(loaded):
    row = loaded.execute("SELECT CURRENT_USER() AS u, current_role() AS r",
                         user="bob").to_arrow().to_pylist()[0]
    assert row == {"u": "bob", "r": "user"}
    ids = col(loaded, "SELECT SNOWFLAKE_ID() AS s", "s")
    assert ids[0] > 0
    assert col(loaded, "SELECT count(*) AS n FROM app.messages WHERE body LIKE "
                       "CURRENT_USER || '%'", "n", user="bob") == [3]


def test_session_namespace_with_use(loaded):
    loaded.execute("USE app", user="bob")
    assert col(loaded, "SELECT id FROM messages", "id", user="bob") == [1, 2, 3]
    with pytest.raises(kalam_engine.TableNotFoundError):
        loaded.execute("SELECT id FROM messages", user="alice")


def test_unknown_table_suggests_close_names(loaded):
    with pytest.raises(kalam_engine.TableNotFoundError) as err:
        loaded.execute("SELECT * FROM app.mesages", user="alice")
    assert "app.messages" in str(err.value)
    assert "kalam." not in str(err.value) and "system." not in str(err.value)


def test_invalid_sql_and_unknown_column(loaded):
    with pytest.raises(kalam_engine.InvalidSqlError):
        loaded.execute("SELEC * FROM app.messages")
    with pytest.raises(kalam_engine.InvalidSqlError):
        loaded.execute("SELECT nope FROM app.messages")
    with pytest.raises(kalam_engine.InvalidSqlError):
        loaded.execute("SELECT * FROM app.messages WHERE (id = 1")
    with pytest.raises(kalam_engine.InvalidParameterError):
        loaded.execute("   ")


def test_information_schema_lists_tables_not_rows(loaded):
    tables = col(loaded, "SELECT table_name FROM information_schema.tables "
                         "WHERE table_schema = 'app' ORDER BY table_name", "table_name")
    assert tables == ["messages", "rooms"]


def test_system_tables_need_admin(loaded):
    assert loaded.execute("SELECT * FROM system.tables").row_count == 2
    for sql in ["SELECT * FROM system.users",
                "SELECT * FROM app.messages WHERE id IN (SELECT 1 FROM system.tables)",
                "WITH x AS (SELECT * FROM system.namespaces) SELECT * FROM x",
                "SELECT table_name AS n FROM system.tables UNION SELECT body FROM app.messages"]:
        with pytest.raises(kalam_engine.PermissionDeniedError):
            loaded.execute(sql, user="alice")


def test_result_api(loaded):
    res = loaded.execute("SELECT id, body FROM app.messages", user="bob")
    assert res.kind == "query" and res.message is None and res.row_count == 3
    assert list(res.to_pandas()["id"]) == [1, 2, 3]
    assert res.took_ms >= 0 and "bob" in repr(res)
    ddl = loaded.execute("CREATE NAMESPACE other")
    assert ddl.to_pandas().empty and ddl.kind == "ddl"


def test_closed_engine(db):
    db.close()
    with pytest.raises(kalam_engine.EngineClosedError):
        db.execute("SELECT 1")


def test_information_schema_lists_only_readable_tables(loaded):
    loaded.execute("CREATE SHARED TABLE app.secrets (id INT PRIMARY KEY)")  # private
    names = col(loaded, "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = 'app' ORDER BY table_name", "table_name")
    assert names == ["messages", "rooms"]
    assert "secrets" in col(loaded, "SELECT table_name FROM information_schema.tables",
                            "table_name", user=None)
    with pytest.raises(kalam_engine.PermissionDeniedError):
        loaded.execute("SELECT * FROM app.secrets", user="alice")
