"""Property test: random reads and writes by 24 users of every role, directly and through
EXECUTE AS USER, over USER, STREAM and SHARED tables. A model tracks who owns which row; no read
may ever return a row its effective user may not see, and every denial is PERMISSION_DENIED."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as stx

import kalam_engine
from kalam_engine import ConstraintError, PermissionDeniedError
from kalam_engine.auth import passwords

ROLE_ORDER = {"user": 1, "service": 2, "dba": 3, "system": 4}
USERS: dict[str, str] = {f"p{i:02d}": ("user", "service", "dba", "user")[i % 4]
                         for i in range(22)}
USERS["p_sys"] = "system"
GHOSTS = ("ghost1", "ghost2")  # never created: they act with role user
ACTORS = sorted(USERS) + list(GHOSTS)
# SHARED table -> (lowest role that reads, lowest role that writes); semantics section 2
SHARED = {"pub": ("user", "service"), "priv": ("service", "service"), "dbat": ("dba", "dba")}
PER_USER = ("notes", "events")
TABLES = (*PER_USER, *SHARED)
MAY_TARGET = {"system": {"system", "dba", "service", "user"}, "dba": {"dba", "service", "user"},
              "service": {"service", "user"}, "user": set()}
READ_SHAPES = (
    "SELECT id, body FROM app.{t}",
    "SELECT id, body FROM app.{t} WHERE body LIKE '%|%'",
    "SELECT id, body FROM (SELECT * FROM app.{t}) s",
    "WITH c AS (SELECT id, body FROM app.{t}) SELECT id, body FROM c",
    "SELECT id, body FROM app.{t} WHERE id IN (SELECT id FROM app.{t})",
    "SELECT id, body FROM app.{t} UNION ALL SELECT id, body FROM app.{t} WHERE false",
)


def role(user: str) -> str:
    return USERS.get(user, "user")


@dataclass
class Model:
    per_user: dict[tuple[str, str], dict[int, str]] = field(default_factory=dict)
    shared: dict[str, dict[int, str]] = field(default_factory=dict)

    def rows(self, table: str, identity: str) -> dict[int, str]:
        if table in SHARED:
            return self.shared.setdefault(table, {})
        return self.per_user.setdefault((table, identity), {})


step = stx.tuples(
    stx.sampled_from(("insert", "insert", "read", "read", "update", "delete")),
    stx.sampled_from(TABLES),
    stx.sampled_from(ACTORS),
    stx.one_of(stx.none(), stx.sampled_from(ACTORS)),  # EXECUTE AS target
    stx.integers(0, 4),
    stx.integers(0, len(READ_SHAPES) - 1),
)


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_COST", 4)


def fresh_engine() -> kalam_engine.Engine:
    db = kalam_engine.connect(":memory:")
    db.execute("CREATE NAMESPACE app")
    for user, r in USERS.items():
        db.execute(f"CREATE USER {user} WITH INTERNAL ROLE {r}")
    db.execute("CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT)")
    db.execute("CREATE STREAM TABLE app.events (id INT PRIMARY KEY, body TEXT) "
               "WITH (TTL_SECONDS=86400)")
    for table, level in (("pub", "PUBLIC"), ("priv", "PRIVATE"), ("dbat", "DBA")):
        db.execute(f"CREATE SHARED TABLE app.{table} (id INT PRIMARY KEY, body TEXT) "
                   f"WITH (ACCESS_LEVEL='{level}')")
    return db


def expected_denial(actor: str, target: str | None, table: str, write: bool) -> bool:
    """True if the semantics document denies this step."""
    if target is not None and target != actor:
        if role(target) not in MAY_TARGET[role(actor)]:
            return True
        # EXECUTE AS is refused on SHARED tables; the target (role user) always reaches its
        # own USER/STREAM rows
        return table in SHARED
    if table in SHARED:  # (EXECUTE AS yourself is a no-op: the plain rules apply)
        needed = SHARED[table][1 if write else 0]
        return ROLE_ORDER[role(actor)] < ROLE_ORDER[needed]
    return False


@settings(max_examples=25, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(steps=stx.lists(step, min_size=10, max_size=40))
def test_no_row_reaches_a_user_who_may_not_see_it(steps: list[tuple]) -> None:
    db = fresh_engine()
    model = Model()
    try:
        for n, (op, table, actor, target, key, shape) in enumerate(steps):
            identity = target if target is not None else actor
            body = f"{identity if table in PER_USER else 'shared'}|{n}"
            if op == "insert":
                sql = f"INSERT INTO app.{table} (id, body) VALUES ({key}, '{body}')"
            elif op == "update":
                sql = f"UPDATE app.{table} SET body = '{body}' WHERE id = {key}"
            elif op == "delete":
                sql = f"DELETE FROM app.{table} WHERE id = {key}"
            else:
                sql = READ_SHAPES[shape].format(t=table)
            if target is not None:
                sql = f"EXECUTE AS USER '{target}' ({sql})"
            denied = expected_denial(actor, target, table, write=op != "read")
            if denied:
                with pytest.raises(PermissionDeniedError):
                    db.execute(sql, user=actor)
                continue
            rows = model.rows(table, identity)
            if op == "insert" and key in rows:
                with pytest.raises(ConstraintError):
                    db.execute(sql, user=actor)
                continue
            result = db.execute(sql, user=actor)
            if op == "insert" or (op == "update" and key in rows):
                rows[key] = body
            elif op == "delete":
                rows.pop(key, None)
            elif op == "read":
                got = result.to_arrow().to_pylist()
                assert result.as_user == identity
                owner = identity if table in PER_USER else "shared"
                # the safety property: every row returned belongs to who may see it ...
                assert all(r["body"].split("|")[0] == owner for r in got), (sql, actor, got)
                # ... and the read is exactly the model's rows for that identity
                assert {r["id"]: r["body"] for r in got} == rows
        # final sweep: every actor writes one row of its own to each per-user table, then reads
        # every table, directly and as one EXECUTE AS target
        for user in ACTORS:
            for table in PER_USER:
                db.execute(f"INSERT INTO app.{table} (id, body) VALUES (99, '{user}|final')",
                           user=user)
                model.rows(table, user)[99] = f"{user}|final"
        for user in ACTORS:
            for table in TABLES:
                for target in (None, ACTORS[(ACTORS.index(user) + 5) % len(ACTORS)]):
                    identity = target or user
                    sql = f"SELECT id, body FROM app.{table}"
                    if target is not None:
                        sql = f"EXECUTE AS USER {target} ({sql})"
                    if expected_denial(user, target, table, write=False):
                        with pytest.raises(PermissionDeniedError):
                            db.execute(sql, user=user)
                        continue
                    got = db.execute(sql, user=user).to_arrow()
                    assert dict(zip(got["id"].to_pylist(), got["body"].to_pylist(),
                                    strict=True)) == model.rows(table, identity), (sql, user)
    finally:
        db.close()
