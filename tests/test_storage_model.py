"""Model-based test: random inserts, updates, deletes, flushes, compactions and reopens over a
USER and a SHARED table give exactly what a plain dict gives, for every user."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as hs
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import kalam_engine
from kalam_engine.model.errors import ConstraintError

USERS = ("alice", "bob")
TABLES = ("app.u", "app.s")
keys = hs.integers(min_value=0, max_value=4)
values = hs.integers(min_value=-5, max_value=5)
tables = hs.sampled_from(TABLES)
users = hs.sampled_from(USERS)


class StorageMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="kalam-model-"))
        self.db = kalam_engine.connect(self.dir)
        self.db.execute("CREATE NAMESPACE app")
        self.db.execute("CREATE USER TABLE app.u (id INT PRIMARY KEY, v INT) "
                        "WITH (FLUSH_POLICY='rows:2')")
        self.db.execute("CREATE SHARED TABLE app.s (id INT PRIMARY KEY, v INT) "
                        "WITH (ACCESS_LEVEL='PUBLIC', FLUSH_POLICY='rows:3')")
        self.model: dict[tuple[str, str], dict[int, int]] = {}

    def _scope(self, table: str, user: str) -> tuple[str, str]:
        return (table, "" if table == "app.s" else user)

    def _writer(self, table: str, user: str) -> str | None:
        return None if table == "app.s" else user  # SHARED writes need role service: root

    @rule(table=tables, user=users, batch=hs.dictionaries(keys, values, min_size=1, max_size=3))
    def insert(self, table: str, user: str, batch: dict[int, int]) -> None:
        rows = self.model.setdefault(self._scope(table, user), {})
        sql = f"INSERT INTO {table} VALUES " + ", ".join(f"({k}, {v})" for k, v in batch.items())
        if rows.keys() & batch.keys():
            try:
                self.db.execute(sql, user=self._writer(table, user))
            except ConstraintError:
                return  # all or nothing: the model is unchanged
            raise AssertionError(f"duplicate key accepted in {table}: {batch}")
        self.db.execute(sql, user=self._writer(table, user))
        rows.update(batch)

    @rule(table=tables, user=users, key=keys, value=values)
    def update(self, table: str, user: str, key: int, value: int) -> None:
        self.db.execute(f"UPDATE {table} SET v = {value} WHERE id = {key}",
                        user=self._writer(table, user))
        rows = self.model.setdefault(self._scope(table, user), {})
        if key in rows:
            rows[key] = value

    @rule(table=tables, user=users, low=keys)
    def delete(self, table: str, user: str, low: int) -> None:
        self.db.execute(f"DELETE FROM {table} WHERE id >= {low} AND id < {low + 2}",
                        user=self._writer(table, user))
        rows = self.model.setdefault(self._scope(table, user), {})
        for key in (low, low + 1):
            rows.pop(key, None)

    @rule(table=tables)
    def flush(self, table: str) -> None:
        self.db.execute(f"STORAGE FLUSH TABLE {table}")

    @rule(table=tables)
    def compact(self, table: str) -> None:
        self.db.execute(f"STORAGE COMPACT TABLE {table}")

    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.db = kalam_engine.connect(self.dir)

    @invariant()
    def same_as_model(self) -> None:
        for table in TABLES:
            for user in USERS if table == "app.u" else (None,):
                got = self.db.execute(f"SELECT id, v FROM {table} ORDER BY id",
                                      user=user).to_arrow()
                want = self.model.get(self._scope(table, user or ""), {})
                assert dict(zip(got["id"].to_pylist(), got["v"].to_pylist(),
                                strict=True)) == want, (table, user)
                assert len(got) == len(want)

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)


StorageMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None, derandomize=True,
    database=None)
TestStorageModel = StorageMachine.TestCase
