"""Namespaces and tables: CREATE / DROP / ALTER / SHOW / DESCRIBE, with their error codes."""

from __future__ import annotations

import pytest

import kalam_engine
from kalam_engine import TableId


def codes(fn):
    with pytest.raises(kalam_engine.KalamError) as err:
        fn()
    return err.value.code


# --- namespaces -----------------------------------------------------------------------------------
def test_namespace_lifecycle(db):
    assert db.execute("CREATE NAMESPACE app").message == "Namespace 'app' created"
    assert "already exists" in db.execute("CREATE NAMESPACE IF NOT EXISTS app").message
    assert codes(lambda: db.execute("CREATE NAMESPACE app")) == "ALREADY_EXISTS"
    names = db.execute("SHOW NAMESPACES").to_arrow()["name"].to_pylist()
    assert "app" in names and "default" in names
    db.execute("USE app")
    db.execute("CREATE USER TABLE t (id INT PRIMARY KEY)")
    assert db.execute("SHOW TABLES").to_arrow()["namespace_id"].to_pylist() == ["app"]
    assert codes(lambda: db.execute("DROP NAMESPACE app")) == "INVALID_PARAMETER"
    assert "1 table" in db.execute("DROP NAMESPACE app CASCADE").message
    assert codes(lambda: db.execute("DROP NAMESPACE app")) == "NAMESPACE_NOT_FOUND"
    assert "does not exist" in db.execute("DROP NAMESPACE IF EXISTS app").message
    assert codes(lambda: db.execute("SELECT * FROM app.t")) == "TABLE_NOT_FOUND"


@pytest.mark.parametrize("name", ["system", "default", "information_schema", "kalam", "1abc",
                                  "_x", "a-b", "select", "x" * 65])
def test_bad_namespace_names(db, name):
    assert codes(lambda: db.execute(f'CREATE NAMESPACE "{name}"')) == "INVALID_PARAMETER"


def test_use_unknown_namespace(db):
    assert codes(lambda: db.execute("USE nowhere")) == "NAMESPACE_NOT_FOUND"


def test_alter_namespace_options(db):
    db.execute("CREATE NAMESPACE app")
    db.execute("ALTER NAMESPACE app SET OPTIONS (owner='ops', tier=2)")
    row = db.execute("SELECT options FROM system.namespaces WHERE name = 'app'").to_arrow() \
        .to_pylist()
    assert '"owner": "ops"' in row[0]["options"]


# --- CREATE TABLE ---------------------------------------------------------------------------------
def test_create_table_every_type_and_data_type(db):
    db.execute("CREATE NAMESPACE app")
    db.execute("""CREATE TABLE app.everything (
        id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), b BOOLEAN, s SMALLINT, i INT,
        big BIGINT, f FLOAT, d DOUBLE PRECISION, dec DECIMAL(10,2), t TEXT, v VARCHAR(20),
        raw BYTES, j JSON, ts TIMESTAMP DEFAULT NOW(), day DATE, dt DATETIME, tm TIME,
        u UUID, emb EMBEDDING(3), f2 FILE, who TEXT DEFAULT CURRENT_USER(), u7 TEXT DEFAULT
        UUID_V7(), ul TEXT DEFAULT ULID()) WITH (TYPE='USER')""")
    desc = db.execute("DESCRIBE TABLE app.everything").to_arrow().to_pylist()
    types = {r["column_name"]: r["data_type"] for r in desc}
    assert types["dec"] == "Decimal(10,2)" and types["emb"] == "Embedding(3)"
    assert types["dt"] == "DateTime" and types["u"] == "Uuid" and types["f2"] == "File"
    assert next(r for r in desc if r["column_name"] == "id")["is_primary_key"]
    db.execute("""INSERT INTO app.everything (b, s, i, big, f, d, dec, t, v, raw, j, day, dt,
        tm, u, emb, f2) VALUES (true, 1, 2, 3, 1.5, 2.5, 12.34, 'x', 'y', X'0102', '{"a":1}',
        '2024-01-02', '2024-01-02T03:04:05Z', '10:11:12',
        '0190a7c4-8e1e-7cc1-9d3e-2c5b3f1e0a11', '[1,2,3]', '{"id":"f"}')""", user="alice")
    row = db.execute("SELECT * FROM app.everything", user="alice").to_arrow().to_pylist()[0]
    assert row["who"] == "alice" and len(row["ul"]) == 26 and row["u7"][14] == "7"
    assert row["emb"] == [1.0, 2.0, 3.0] and str(row["dec"]) == "12.34"
    assert row["u"].hex() == "0190a7c48e1e7cc19d3e2c5b3f1e0a11"
    assert row["ts"] is not None and row["id"] > 0 and row["_deleted"] is False


def test_table_types_from_prefix_and_option(db):
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE TABLE app.plain (id INT PRIMARY KEY)")
    db.execute("CREATE TABLE app.u (id INT PRIMARY KEY) WITH (TYPE='USER')")
    db.execute("CREATE STREAM TABLE app.ev (kind TEXT) WITH (TTL_SECONDS=60)")
    types = {r["table_name"]: r["table_type"]
             for r in db.execute("SHOW TABLES IN app").to_arrow().to_pylist()}
    assert types == {"plain": "SHARED", "u": "USER", "ev": "STREAM"}
    level = db.execute("SELECT access_level FROM system.schemas WHERE table_name = 'plain'")
    assert level.to_arrow()["access_level"].to_pylist() == ["private"]


@pytest.mark.parametrize("sql,code,fragment", [
    ("CREATE USER TABLE app.t (id INT PRIMARY KEY) WITH (TYPE='SHARED')", "INVALID_PARAMETER",
     "conflicts"),
    ("CREATE USER TABLE app.t (id INT)", "INVALID_PARAMETER", "require a PRIMARY KEY"),
    ("CREATE USER TABLE app.t (a INT, b INT, PRIMARY KEY (a, b))", "INVALID_PARAMETER",
     "Composite"),
    ("CREATE STREAM TABLE app.t (a INT)", "INVALID_PARAMETER", "TTL_SECONDS"),
    ("CREATE USER TABLE app.t (id INT PRIMARY KEY) WITH (TTL_SECONDS=5)", "INVALID_PARAMETER",
     "only allowed on STREAM"),
    ("CREATE USER TABLE app.t (id INT PRIMARY KEY) WITH (ACCESS_LEVEL='PUBLIC')",
     "INVALID_PARAMETER", "only allowed on SHARED"),
    ("CREATE TABLE app.t (id INT PRIMARY KEY) WITH (COLOR='red')", "INVALID_PARAMETER",
     "Unknown table option 'COLOR'"),
    ("CREATE TABLE app.t (id INT PRIMARY KEY) WITH (FLUSH_POLICY='rows:0')", "INVALID_PARAMETER",
     "FLUSH_POLICY"),
    ("CREATE TABLE app.t (id INT PRIMARY KEY) WITH (STORAGE_ID='s3')", "INVALID_PARAMETER",
     "Storage"),
    ("CREATE TABLE app.t (id INT PRIMARY KEY, x WIDGET)", "INVALID_PARAMETER", "Unknown data"),
    ("CREATE TABLE app.t (id INT PRIMARY KEY, ID TEXT)", "INVALID_PARAMETER", "Duplicate"),
    ("CREATE TABLE app.t (id INT PRIMARY KEY, _seq INT)", "INVALID_PARAMETER", "reserved"),
    ("CREATE TABLE app.t (id INT PRIMARY KEY, e EMBEDDING(9000))", "INVALID_PARAMETER",
     "out of range"),
    ("CREATE TABLE app.t (id INT PRIMARY KEY, d DECIMAL(40,2))", "INVALID_PARAMETER",
     "out of range"),
    ("CREATE TABLE nope.t (id INT PRIMARY KEY)", "NAMESPACE_NOT_FOUND", "CREATE NAMESPACE nope"),
    ("CREATE TABLE app.t (id INT PRIMARY KEY, n INT DEFAULT random())", "INVALID_PARAMETER",
     "Unsupported DEFAULT"),
    ("CREATE TABLE app.t (id INT PRIMARY KEY, n INT DEFAULT 'abc')", "INVALID_PARAMETER",
     "cannot hold"),
    ("CREATE TABLE app.t id INT", "INVALID_SQL", "column list"),
])
def test_create_table_errors(db, sql, code, fragment):
    db.execute("CREATE NAMESPACE app")
    with pytest.raises(kalam_engine.KalamError) as err:
        db.execute(sql)
    assert err.value.code == code
    assert fragment in str(err.value)
    assert db.execute("SHOW TABLES IN app").row_count == 0


def test_create_existing_table(db):
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.t (id INT PRIMARY KEY)")
    assert codes(lambda: db.execute("CREATE USER TABLE app.t (id INT PRIMARY KEY)")) \
        == "ALREADY_EXISTS"
    assert "already exists" in db.execute(
        "CREATE USER TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY)").message


def test_auto_increment_and_serial_become_snowflake_defaults(db):
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.a (id BIGINT PRIMARY KEY AUTO_INCREMENT, x TEXT)")
    db.execute("CREATE USER TABLE app.b (id BIGSERIAL PRIMARY KEY, x TEXT)")
    db.execute("CREATE USER TABLE app.c (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
               "x TEXT)")
    for t in "abc":
        db.execute(f"INSERT INTO app.{t} (x) VALUES ('1'), ('2')")
        ids = db.execute(f"SELECT id FROM app.{t}").to_arrow()["id"].to_pylist()
        assert len(set(ids)) == 2 and ids == sorted(ids)
        desc = db.execute(f"DESCRIBE TABLE app.{t}").to_arrow().to_pylist()
        assert desc[0]["column_default"] == "SNOWFLAKE_ID()"


def test_user_role_shared_in_own_namespace_becomes_user_table(db):
    db.execute("CREATE NAMESPACE alice")
    db.execute("CREATE TABLE alice.notes (id INT PRIMARY KEY)", user="alice")
    assert db.cache.get_provider(TableId("alice", "notes")).table_type.value == "USER"


# --- DROP / ALTER ---------------------------------------------------------------------------------
def test_drop_table(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'x')", user="alice")
    assert chat.execute("DROP TABLE app.messages").message == \
        "Table app.messages dropped successfully"
    assert codes(lambda: chat.execute("SELECT * FROM app.messages", user="alice")) \
        == "TABLE_NOT_FOUND"
    assert codes(lambda: chat.execute("DROP TABLE app.messages")) == "TABLE_NOT_FOUND"
    assert "does not exist" in chat.execute("DROP TABLE IF EXISTS app.messages").message
    chat.execute("CREATE USER TABLE app.messages (id BIGINT PRIMARY KEY, body TEXT)")
    assert chat.execute("SELECT * FROM app.messages", user="alice").row_count == 0


def test_alter_add_drop_rename_default_each_a_new_version(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'old')", user="alice")
    chat.execute("ALTER TABLE app.messages ADD COLUMN mood TEXT DEFAULT 'ok'")
    chat.execute("INSERT INTO app.messages (id, body) VALUES (2, 'new')", user="alice")
    rows = chat.execute("SELECT id, mood FROM app.messages", user="alice").to_arrow().to_pylist()
    assert rows == [{"id": 1, "mood": None}, {"id": 2, "mood": "ok"}]
    chat.execute("ALTER TABLE app.messages RENAME COLUMN mood TO feeling")
    rows = chat.execute("SELECT feeling FROM app.messages", user="alice").to_arrow()
    assert rows["feeling"].to_pylist() == [None, "ok"]
    chat.execute("ALTER TABLE app.messages ALTER COLUMN feeling SET DEFAULT 'meh'")
    chat.execute("INSERT INTO app.messages (id, body) VALUES (3, 'x')", user="alice")
    chat.execute("ALTER TABLE app.messages ALTER COLUMN feeling DROP DEFAULT")
    chat.execute("INSERT INTO app.messages (id, body) VALUES (4, 'y')", user="alice")
    rows = chat.execute("SELECT feeling FROM app.messages", user="alice").to_arrow()
    assert rows["feeling"].to_pylist() == [None, "ok", "meh", None]
    chat.execute("ALTER TABLE app.messages DROP COLUMN feeling")
    assert codes(lambda: chat.execute("SELECT feeling FROM app.messages", user="alice")) \
        == "INVALID_SQL"
    versions = chat.execute("DESCRIBE TABLE app.messages HISTORY").to_arrow()
    assert max(versions["schema_version"].to_pylist()) == 6
    latest = chat.execute("SELECT schema_version, is_latest FROM system.schemas "
                          "WHERE table_name = 'messages' ORDER BY schema_version").to_arrow()
    assert latest["is_latest"].to_pylist() == [False] * 5 + [True]


def test_alter_add_not_null_column(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'x')", user="alice")
    assert codes(lambda: chat.execute(
        "ALTER TABLE app.messages ADD COLUMN lang TEXT NOT NULL")) == "INVALID_PARAMETER"
    chat.execute("ALTER TABLE app.messages ADD COLUMN lang TEXT NOT NULL DEFAULT 'en'")
    rows = chat.execute("SELECT lang FROM app.messages", user="alice").to_arrow()
    assert rows["lang"].to_pylist() == ["en"]


def test_alter_set_not_null_checks_existing_rows(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'x')", user="alice")
    chat.execute("ALTER TABLE app.messages ADD COLUMN note TEXT")
    assert codes(lambda: chat.execute(
        "ALTER TABLE app.messages ALTER COLUMN note SET NOT NULL")) == "INVALID_PARAMETER"
    chat.execute("UPDATE app.messages SET note = 'n' WHERE id = 1", user="alice")
    chat.execute("ALTER TABLE app.messages ALTER COLUMN note SET NOT NULL")
    assert codes(lambda: chat.execute(
        "INSERT INTO app.messages (id, body) VALUES (2, 'y')", user="alice")) \
        == "INVALID_PARAMETER"


@pytest.mark.parametrize("sql,fragment", [
    ("ALTER TABLE app.messages DROP COLUMN id", "PRIMARY KEY"),
    ("ALTER TABLE app.messages RENAME COLUMN id TO key", "PRIMARY KEY"),
    ("ALTER TABLE app.messages ALTER COLUMN id DROP NOT NULL", "nullable"),
    ("ALTER TABLE app.messages DROP COLUMN _seq", "System column"),
    ("ALTER TABLE app.messages DROP COLUMN nothing", "no column"),
    ("ALTER TABLE app.messages ADD COLUMN body TEXT", "already exists"),
    ("ALTER TABLE app.messages SET ACCESS LEVEL PUBLIC", "SHARED"),
    ("ALTER TABLE app.messages ADD COLUMN x INT FIRST", "FIRST"),
])
def test_alter_errors_change_nothing(chat, sql, fragment):
    before = chat.cache.get_provider(TableId("app", "messages"))
    with pytest.raises(kalam_engine.KalamError, match=fragment):
        chat.execute(sql)
    assert chat.cache.get_provider(TableId("app", "messages")) is before


def test_alter_access_level(chat):
    chat.execute("ALTER TABLE app.rooms SET TBLPROPERTIES (ACCESS_LEVEL='DBA')")
    level = chat.execute("SELECT access_level FROM system.schemas WHERE table_name = 'rooms' "
                         "AND is_latest").to_arrow()["access_level"].to_pylist()
    assert level == ["dba"]
    assert codes(lambda: chat.execute("SELECT * FROM app.rooms", user="alice")) \
        == "PERMISSION_DENIED"


def test_show_stats_and_system_columns(chat):
    chat.execute("INSERT INTO app.messages (id, body) VALUES (1, 'x'), (2, 'y')", user="alice")
    stats = chat.execute("SHOW STATS FOR TABLE app.messages", user="alice").to_arrow()
    assert stats["logical_rows"].to_pylist() == [2]
    cols = chat.execute("SELECT column_name FROM system.columns WHERE table_name = 'messages' "
                        "ORDER BY ordinal").to_arrow()["column_name"].to_pylist()
    assert cols == ["id", "body", "score"]
