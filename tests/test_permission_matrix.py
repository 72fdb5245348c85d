"""The role matrix of semantics section 3 and the SHARED access levels of section 2, every cell.

The expected answers below are written from the semantics document, not from the engine's own
rule tables: ``ALLOWED`` names, per operation, the roles the document lets through. Every cell
runs on a fresh engine; a denied cell must raise PERMISSION_DENIED and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import kalam_engine
from kalam_engine import ExecutionContext, PermissionDeniedError, Role, TableId
from kalam_engine.auth import passwords

ROLES = ("user", "service", "dba", "system")
ACTOR = {"user": "u_user", "service": "u_service", "dba": "u_dba", "system": "u_system"}
ALL = frozenset(ROLES)
SERVICE_UP = frozenset({"service", "dba", "system"})
ADMIN = frozenset({"dba", "system"})
NOBODY: frozenset[str] = frozenset()

SYSTEM_TABLES = ("namespaces", "tables", "schemas", "columns", "users", "jobs", "stats",
                 "audit_log", "settings", "server_logs", "datatypes", "job_nodes")

# operation -> (SQL with {me} for the actor's user id, roles allowed by the semantics document)
ALLOWED: dict[str, tuple[str, frozenset[str]]] = {
    # "CREATE/ALTER/DROP NAMESPACE, STORAGE; users (except own ALTER USER)": dba, system
    "create namespace": ("CREATE NAMESPACE fresh", ADMIN),
    "alter namespace": ("ALTER NAMESPACE app SET OPTIONS (owner='x')", ADMIN),
    "drop namespace": ("DROP NAMESPACE scratch", ADMIN),
    "create user": ("CREATE USER newbie WITH PASSWORD 'password1' ROLE user", ADMIN),
    "create user with email": (
        "CREATE USER 'newbie' WITH PASSWORD 'password1' ROLE 'viewer' EMAIL 'n@x.org'", ADMIN),
    "create internal user": ("CREATE USER newbie WITH INTERNAL ROLE service", ADMIN),
    "alter another user's email": ("ALTER USER victim SET EMAIL 'v@x.org'", ADMIN),
    "alter another user's password": ("ALTER USER victim SET PASSWORD 'password2'", ADMIN),
    "alter another user's role": ("ALTER USER victim SET ROLE service", ADMIN),
    "drop user": ("DROP USER victim", ADMIN),
    "drop user if exists": ("DROP USER IF EXISTS victim", ADMIN),
    # "ALTER USER is allowed on yourself" (SET ROLE on yourself: admins only)
    "alter own password": ("ALTER USER {me} SET PASSWORD 'password3'", ALL),
    "alter own email": ("ALTER USER {me} SET EMAIL 'me@x.org'", ALL),
    "alter own role": ("ALTER USER {me} SET ROLE user", ADMIN),
    # "CREATE TABLE USER/STREAM": everyone; "CREATE TABLE SHARED": service and up
    "create user table": ("CREATE USER TABLE app.t2 (id INT PRIMARY KEY)", ALL),
    "create stream table": (
        "CREATE STREAM TABLE app.t2 (id INT PRIMARY KEY) WITH (TTL_SECONDS=60)", ALL),
    "create table with TYPE='USER'": (
        "CREATE TABLE app.t2 (id INT PRIMARY KEY) WITH (TYPE='USER')", ALL),
    "create shared table": ("CREATE SHARED TABLE app.t2 (id INT PRIMARY KEY)", SERVICE_UP),
    "create table (default type SHARED)": ("CREATE TABLE app.t2 (id INT PRIMARY KEY)",
                                           SERVICE_UP),
    "create public shared table": (
        "CREATE SHARED TABLE app.t2 (id INT PRIMARY KEY) WITH (ACCESS_LEVEL='PUBLIC')",
        SERVICE_UP),
    # "ALTER TABLE": KalamDB lets user alter USER/STREAM tables and service SHARED ones.
    # Deliberate difference (issue 11): a USER/STREAM table's schema is shared by every tenant,
    # so every schema change needs dba, as DROP TABLE does.
    "alter user table": ("ALTER TABLE app.notes ADD COLUMN extra TEXT", ADMIN),
    "drop a column of a user table": ("ALTER TABLE app.notes DROP COLUMN body", ADMIN),
    "rename a column of a user table": ("ALTER TABLE app.notes RENAME COLUMN body TO b",
                                        ADMIN),
    "modify a column of a user table": ("ALTER TABLE app.notes MODIFY COLUMN body VARCHAR",
                                        ADMIN),
    "alter stream table": ("ALTER TABLE app.events ADD COLUMN extra TEXT", ADMIN),
    "alter shared table": ("ALTER TABLE app.pub ADD COLUMN extra TEXT", ADMIN),
    "alter shared table access level": ("ALTER TABLE app.priv SET ACCESS LEVEL public",
                                        ADMIN),
    # "DROP TABLE": dba (not system tables), system
    "drop user table": ("DROP TABLE app.notes", ADMIN),
    "drop stream table": ("DROP TABLE app.events", ADMIN),
    "drop shared table": ("DROP TABLE app.pub", ADMIN),
    "drop table if exists": ("DROP TABLE IF EXISTS app.pub", ADMIN),
    # Deliberate difference: system tables are built-in views here, so even role system may not
    # drop or alter them (KalamDB's table marks DROP TABLE ✓ for system).
    "drop system table": ("DROP TABLE system.users", NOBODY),
    "alter system table": ("ALTER TABLE system.users ADD COLUMN x TEXT", NOBODY),
    "create table in system namespace": ("CREATE USER TABLE system.mine (id INT PRIMARY KEY)",
                                         NOBODY),
    # "STORAGE FLUSH/COMPACT": service and up
    "storage flush user table": ("STORAGE FLUSH TABLE app.notes", SERVICE_UP),
    "storage flush shared table": ("STORAGE FLUSH TABLE app.pub", SERVICE_UP),
    "storage compact": ("STORAGE COMPACT TABLE app.notes", SERVICE_UP),
    "storage flush all": ("STORAGE FLUSH ALL IN app", SERVICE_UP),
    "storage compact all": ("STORAGE COMPACT ALL IN app", SERVICE_UP),
    # "INSERT/UPDATE/DELETE on system.*": nobody
    "insert into system table": (
        "INSERT INTO system.users (user_id, role) VALUES ('evil', 'system')", NOBODY),
    "update system table": ("UPDATE system.users SET role = 'system' WHERE user_id = '{me}'",
                            NOBODY),
    "delete from system table": ("DELETE FROM system.users WHERE user_id = 'victim'", NOBODY),
    "insert into system table, quoted": (
        'INSERT INTO "system"."namespaces" (namespace_id) VALUES (\'x\')', NOBODY),
    # "SELECT system.* (incl. subqueries, CTEs, UNION, EXPLAIN)": dba, system
    **{f"select system.{t}": (f"SELECT * FROM system.{t}", ADMIN) for t in SYSTEM_TABLES},
    "system table in a subquery": (
        "SELECT body FROM app.notes WHERE body IN (SELECT user_id FROM system.users)", ADMIN),
    "system table in a scalar subquery": (
        "SELECT (SELECT count(*) FROM system.users) AS n", ADMIN),
    "system table in a CTE": (
        "WITH u AS (SELECT user_id FROM system.users) SELECT count(*) FROM u", ADMIN),
    "system table in a UNION": (
        "SELECT body FROM app.notes UNION ALL SELECT user_id FROM system.users", ADMIN),
    "system table in a JOIN": (
        "SELECT n.body FROM app.notes n JOIN system.users u ON n.body = u.user_id", ADMIN),
    "system table in EXISTS": (
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM system.users)", ADMIN),
    "system table in a derived table": (
        "SELECT count(*) FROM (SELECT * FROM system.schemas) s", ADMIN),
    "system table in a WHERE scalar subquery": (
        "SELECT id FROM app.notes WHERE id <= (SELECT count(*) FROM system.jobs) + 1", ADMIN),
    "system table, catalog-qualified": ("SELECT * FROM kalam.system.users", ADMIN),
    "system table, quoted upper case": ('SELECT * FROM "system"."users"', ADMIN),
    "explain a system table": ("EXPLAIN SELECT * FROM system.users", ADMIN),
    "system table read by INSERT ... SELECT": (
        "INSERT INTO app.notes (id, body) SELECT 900, user_id FROM system.users LIMIT 1",
        ADMIN),
    "system table read by UPDATE ... WHERE": (
        "UPDATE app.notes SET body = 'x' WHERE body IN (SELECT user_id FROM system.users)",
        ADMIN),
    "system table read by DELETE ... WHERE": (
        "DELETE FROM app.notes WHERE body IN (SELECT user_id FROM system.users)", ADMIN),
    # "EXPLAIN/SET/SHOW COLUMNS": dba, system
    "explain a user table": ("EXPLAIN SELECT * FROM app.notes", ADMIN),
    "show columns": ("SHOW COLUMNS FROM app.notes", ADMIN),
    # "SHOW TABLES/NAMESPACES/STORAGES, DESCRIBE TABLE, SHOW STATS, SHOW MANIFEST, USE": all
    "show tables": ("SHOW TABLES", ALL),
    "show tables in": ("SHOW TABLES IN app", ALL),
    "show namespaces": ("SHOW NAMESPACES", ALL),
    "describe table": ("DESCRIBE TABLE app.notes", ALL),
    "describe without TABLE": ("DESCRIBE app.pub", ALL),
    "describe a private shared table": ("DESC TABLE app.priv", ALL),
    "describe a system table": ("DESCRIBE TABLE system.users", ALL),
    "show stats": ("SHOW STATS FOR TABLE app.notes", ALL),
    "use": ("USE app", ALL),
    "use namespace": ("USE NAMESPACE scratch", ALL),
    # "Read/write own USER/STREAM rows": all
    "select own user rows": ("SELECT * FROM app.notes", ALL),
    "insert own user row": ("INSERT INTO app.notes (id, body) VALUES (2, 'two')", ALL),
    "update own user row": ("UPDATE app.notes SET body = 'new' WHERE id = 1", ALL),
    "delete own user row": ("DELETE FROM app.notes WHERE id = 1", ALL),
    "select own stream rows": ("SELECT * FROM app.events", ALL),
    "insert own stream row": ("INSERT INTO app.events (id, body) VALUES (2, 'e')", ALL),
}

# SHARED access levels (section 2): level -> (roles that read, roles that write)
ACCESS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "public": (ALL, SERVICE_UP),
    "private": (SERVICE_UP, SERVICE_UP),
    "restricted": (SERVICE_UP, SERVICE_UP),
    "dba": (ADMIN, ADMIN),
}
LEVEL_TABLE = {"public": "pub", "private": "priv", "restricted": "restr", "dba": "dbat"}
SHARED_READS = {
    "select": "SELECT * FROM app.{t}",
    "count": "SELECT count(*) FROM app.{t}",
    "join with own rows": "SELECT n.id FROM app.notes n JOIN app.{t} s ON n.id = s.id",
    "subquery": "SELECT * FROM app.notes WHERE id IN (SELECT id FROM app.{t})",
    "cte": "WITH s AS (SELECT * FROM app.{t}) SELECT * FROM s",
    "union": "SELECT body FROM app.notes UNION SELECT body FROM app.{t}",
    "insert into own table from it": "INSERT INTO app.notes (id, body) SELECT id + 100, body "
                                     "FROM app.{t}",
    "show stats": "SHOW STATS FOR TABLE app.{t}",
}
SHARED_WRITES = {
    "insert": "INSERT INTO app.{t} (id, body) VALUES (5, 'new')",
    "insert from own rows": "INSERT INTO app.{t} (id, body) SELECT id + 50, body FROM app.notes",
    "update": "UPDATE app.{t} SET body = 'changed' WHERE id = 1",
    "delete": "DELETE FROM app.{t} WHERE id = 1",
}


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_COST", 4)


def make_engine(path: object = ":memory:") -> kalam_engine.Engine:
    db = kalam_engine.connect(path)
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE NAMESPACE scratch")
    for role, user in ACTOR.items():
        db.execute(f"CREATE USER {user} WITH PASSWORD 'password0' ROLE {role}")
    db.execute("CREATE USER victim WITH PASSWORD 'password0' ROLE user")
    db.execute("CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT)")
    db.execute("CREATE STREAM TABLE app.events (id INT PRIMARY KEY, body TEXT) "
               "WITH (TTL_SECONDS=3600)")
    for level, table in LEVEL_TABLE.items():
        db.execute(f"CREATE SHARED TABLE app.{table} (id INT PRIMARY KEY, body TEXT) "
                   f"WITH (ACCESS_LEVEL='{level}')")
        db.execute(f"INSERT INTO app.{table} (id, body) VALUES (1, '{level} row')")
    for user in (*ACTOR.values(), "victim"):
        db.execute("INSERT INTO app.notes (id, body) VALUES (1, $1)", user=user, params=[user])
        db.execute("INSERT INTO app.events (id, body) VALUES (1, $1)", user=user, params=[user])
    return db


def snapshot(db: kalam_engine.Engine) -> dict[str, object]:
    """Everything a statement could change: catalog, users, every table's rows per user (read
    straight from the providers, as role system)."""
    def rows(namespace: str, table: str, user: str = "root",
             columns: tuple[str, ...] | None = None) -> list[tuple]:
        provider = db.cache.get_provider(TableId(namespace, table))
        data = provider.visible_rows(ExecutionContext(user, Role.SYSTEM))
        names = columns or tuple(data.column_names)
        return sorted(zip(*(data[c].to_pylist() for c in names), strict=True))

    state: dict[str, object] = {
        "namespaces": rows("system", "namespaces", columns=("namespace_id", "options")),
        "schemas": rows("system", "schemas",
                        columns=("table_id", "schema_version", "columns", "options")),
        "users": rows("system", "users", columns=("user_id", "role", "email", "password_hash",
                                                  "deleted_at")),
    }
    for table in ("notes", "events"):
        for user in (*ACTOR.values(), "victim"):
            state[f"{table}/{user}"] = rows("app", table, user)
    for table in LEVEL_TABLE.values():
        state[table] = rows("app", table)
    return state


def run_cell(sql: str, role: str, allowed: bool,
             db_factory: Callable[[], kalam_engine.Engine] = make_engine) -> None:
    db = db_factory()
    try:
        actor = ACTOR[role]
        statement = sql.format(me=actor)
        if allowed:
            db.execute(statement, user=actor)
            return
        before = snapshot(db)
        with pytest.raises(PermissionDeniedError) as info:
            db.execute(statement, user=actor)
        assert info.value.code == "PERMISSION_DENIED"
        assert len(info.value.message) > 20  # names the rule
        assert snapshot(db) == before, "a denied statement changed something"
    finally:
        db.close()


ROLE_CELLS = [pytest.param(sql, role, role in roles, id=f"{name} / {role}")
              for name, (sql, roles) in ALLOWED.items() for role in ROLES]


@pytest.mark.parametrize(("sql", "role", "allowed"), ROLE_CELLS)
def test_role_matrix(sql: str, role: str, allowed: bool) -> None:
    run_cell(sql, role, allowed)


ACCESS_CELLS = [
    pytest.param(template.format(t=LEVEL_TABLE[level]), role, role in roles[index],
                 id=f"{level} / {op} / {role}")
    for level, roles in ACCESS.items()
    for index, ops in ((0, SHARED_READS), (1, SHARED_WRITES))
    for op, template in ops.items()
    for role in ROLES]


@pytest.mark.parametrize(("sql", "role", "allowed"), ACCESS_CELLS)
def test_shared_access_levels(sql: str, role: str, allowed: bool) -> None:
    run_cell(sql, role, allowed)


@pytest.mark.parametrize("level", list(ACCESS))
@pytest.mark.parametrize("role", ROLES)
def test_shared_bulk_insert_follows_the_write_rule(level: str, role: str) -> None:
    import pyarrow as pa

    db = make_engine()
    try:
        table = f"app.{LEVEL_TABLE[level]}"
        data = pa.table({"id": pa.array([7], pa.int32()), "body": ["bulk"]})
        if role in ACCESS[level][1]:
            assert db.insert_arrow(table, data, user=ACTOR[role]) == 1
            return
        with pytest.raises(PermissionDeniedError):
            db.insert_arrow(table, data, user=ACTOR[role])
        assert db.execute(f"SELECT count(*) AS n FROM {table}").to_arrow()["n"][0].as_py() == 1
    finally:
        db.close()


def test_flush_cells_on_disk(tmp_path) -> None:
    """STORAGE FLUSH / COMPACT with a real data directory: service and up, and a denied flush
    writes no file."""
    for i, role in enumerate(ROLES):
        path = tmp_path / f"d{i}"
        db = make_engine(path)
        try:
            db.execute("INSERT INTO app.notes (id, body) VALUES (3, 'x')", user=ACTOR[role])
            files = sorted(p.relative_to(path) for p in path.rglob("*") if "storage" in p.parts)
            if role in SERVICE_UP:
                db.execute("STORAGE FLUSH TABLE app.notes", user=ACTOR[role])
                db.execute("STORAGE COMPACT TABLE app.notes", user=ACTOR[role])
            else:
                for verb in ("FLUSH", "COMPACT"):
                    with pytest.raises(PermissionDeniedError, match="service"):
                        db.execute(f"STORAGE {verb} TABLE app.notes", user=ACTOR[role])
                after = sorted(p.relative_to(path) for p in path.rglob("*")
                               if "storage" in p.parts)
                assert after == files
        finally:
            db.close()


@pytest.mark.parametrize("role", ["user", "service"])
def test_shared_create_in_own_namespace_is_downgraded_to_user(role: str) -> None:
    db = make_engine()
    try:
        actor = ACTOR[role]
        db.execute(f"CREATE NAMESPACE {actor}")
        message = db.execute(f"CREATE TABLE {actor}.mine (id INT PRIMARY KEY)", user=actor).message
        assert message.startswith("USER table")
        if role == "user":  # an explicit SHARED prefix elsewhere stays denied
            with pytest.raises(PermissionDeniedError):
                db.execute("CREATE SHARED TABLE scratch.x (id INT PRIMARY KEY)", user=actor)
    finally:
        db.close()


@pytest.mark.parametrize("role", ["dba", "system"])
def test_admins_keep_shared_type_in_their_own_namespace(role: str) -> None:
    db = make_engine()
    try:
        actor = ACTOR[role]
        db.execute(f"CREATE NAMESPACE {actor}")
        message = db.execute(f"CREATE TABLE {actor}.mine (id INT PRIMARY KEY)", user=actor).message
        assert message.startswith("SHARED table")
    finally:
        db.close()


def test_unknown_and_dropped_users_act_with_role_user() -> None:
    db = make_engine()
    try:
        for user in ("nobody_known", "u_dba"):
            if user == "u_dba":
                db.execute("DROP USER u_dba", user="u_system")
            assert db.role_of(user) is kalam_engine.Role.USER
            with pytest.raises(PermissionDeniedError):
                db.execute("SELECT * FROM system.users", user=user)
            with pytest.raises(PermissionDeniedError):
                db.execute("SELECT * FROM app.priv", user=user)
            assert db.execute("SELECT * FROM app.pub", user=user).row_count == 1
    finally:
        db.close()


def test_role_changes_take_effect_on_the_next_statement() -> None:
    db = make_engine()
    try:
        with pytest.raises(PermissionDeniedError):
            db.execute("SELECT * FROM app.priv", user="victim")
        db.execute("ALTER USER victim SET ROLE analyst", user="u_dba")
        assert db.execute("SELECT * FROM app.priv", user="victim").row_count == 1
        db.execute("ALTER USER victim SET ROLE readonly", user="u_dba")
        with pytest.raises(PermissionDeniedError):
            db.execute("SELECT * FROM app.priv", user="victim")
    finally:
        db.close()


def test_user_none_is_root_with_role_system() -> None:
    db = make_engine()
    try:
        assert db.context(None).role is kalam_engine.Role.SYSTEM
        assert db.execute("SELECT * FROM system.users").as_user == "root"
        assert db.execute("SELECT * FROM app.dbat").row_count == 1
    finally:
        db.close()
