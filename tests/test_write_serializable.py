"""Write statements are serializable per table: real threads against a model.

Each test runs real statements from real threads on one engine and checks the outcome against
what some serial order of the acknowledged statements gives. The commit order of the
statements that changed rows is read from the hot log (every acknowledged write is one entry),
ordered by the ``_seq`` the rows got.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable

import pyarrow as pa
import pytest

import kalam_engine
from kalam_engine.model.context import TableId


def _run_threads(workers: list[Callable[[], None]]) -> None:
    """Start all workers together; re-raise the first unexpected error one of them hit."""
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            barrier.wait()
            try:
                fn()
            except BaseException as exc:  # handed to the test thread
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(w)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _rows(db: kalam_engine.Engine, sql: str) -> list[dict]:
    return db.execute(sql).table.to_pylist()


# --- the three reported races ------------------------------------------------------------------

def test_concurrent_increments_are_all_kept(db):
    db.execute("CREATE SHARED TABLE t (id INT PRIMARY KEY, n INT)")
    db.execute("INSERT INTO t VALUES (1, 0)")
    acknowledged = []

    def bump() -> None:
        for _ in range(100):
            acknowledged.append(db.execute("UPDATE t SET n = n + 1 WHERE id = 1").row_count)

    _run_threads([bump] * 4)
    assert acknowledged == [1] * 400
    assert _rows(db, "SELECT n FROM t") == [{"n": 400}]


def test_update_racing_delete_never_resurrects(db):
    db.execute("CREATE SHARED TABLE t (id INT PRIMARY KEY, n INT)")
    keys = range(60)
    db.execute("INSERT INTO t VALUES " + ", ".join(f"({k}, 0)" for k in keys))
    deleted: list[int] = []
    done = threading.Event()

    def delete_all() -> None:
        try:
            for k in keys:
                deleted.append(db.execute(f"DELETE FROM t WHERE id = {k}").row_count)
        finally:
            done.set()

    def update_all() -> None:
        while not done.is_set():
            db.execute("UPDATE t SET n = n + 1 WHERE true")

    _run_threads([delete_all, update_all, update_all])
    assert deleted == [1] * len(keys)  # every DELETE was acknowledged for its row ...
    assert _rows(db, "SELECT id FROM t") == []  # ... and no UPDATE brought one back


@pytest.mark.parametrize("column_list", [True, False])
def test_insert_racing_add_column_not_null_default_never_stores_null(db, column_list):
    db.execute("CREATE SHARED TABLE t (id INT PRIMARY KEY, n INT)")
    db.execute("INSERT INTO t VALUES " + ", ".join(f"({k}, 0)" for k in range(2000)))
    inserted: list[int] = []
    refused: list[kalam_engine.KalamError] = []
    done, started = threading.Event(), threading.Event()
    counter = iter(range(10_000, 1_000_000))
    lock = threading.Lock()

    def insert() -> None:
        while not done.is_set():
            with lock:
                k = next(counter)
            sql = f"INSERT INTO t (id, n) VALUES ({k}, 1)" if column_list \
                else f"INSERT INTO t VALUES ({k}, 1)"
            try:
                db.execute(sql)
            except kalam_engine.KalamError as exc:  # the table gained a column meanwhile
                refused.append(exc)
                return
            inserted.append(k)
            if len(inserted) >= 5:
                started.set()

    def alter() -> None:
        started.wait(timeout=60)  # the ALTERs start while INSERTs are running
        try:
            for i in range(3):
                db.execute(f"ALTER TABLE t ADD COLUMN c{i} INT NOT NULL DEFAULT {i + 7}")
        finally:
            done.set()

    _run_threads([insert, insert, alter])
    assert inserted
    for exc in refused:
        assert not column_list
        assert exc.code == "INVALID_PARAMETER" and "value(s)" in str(exc)
    rows = _rows(db, "SELECT * FROM t")
    assert len(rows) == 2000 + len(inserted)
    assert {r["id"] for r in rows} >= set(inserted)
    for i in range(3):
        assert all(r[f"c{i}"] == i + 7 for r in rows), f"NULL stored in c{i}"


def test_insert_arrow_racing_add_column_not_null_default_never_stores_null(db):
    db.execute("CREATE SHARED TABLE t (id INT PRIMARY KEY, n INT)")
    db.execute("INSERT INTO t VALUES " + ", ".join(f"({k}, 0)" for k in range(2000)))
    done, started = threading.Event(), threading.Event()
    inserted: list[int] = []

    def insert() -> None:
        k = 10_000
        while not done.is_set():
            db.insert_arrow(TableId("default", "t"), pa.table({"id": [k], "n": [1]}))
            inserted.append(k)
            k += 1
            if len(inserted) >= 5:
                started.set()

    def alter() -> None:
        started.wait(timeout=60)
        try:
            for i in range(3):
                db.execute(f"ALTER TABLE t ADD COLUMN c{i} INT NOT NULL DEFAULT {i + 7}")
        finally:
            done.set()

    _run_threads([insert, alter])
    rows = _rows(db, "SELECT * FROM t")
    assert len(rows) == 2000 + len(inserted)
    for i in range(3):
        assert all(r[f"c{i}"] == i + 7 for r in rows), f"NULL stored in c{i}"


def test_concurrent_alters_keep_every_change(db):
    """Each ALTER reads the definition under the table's lock: none works from a version
    another ALTER already replaced (which would drop that ALTER's column)."""
    db.execute("CREATE SHARED TABLE t (id INT PRIMARY KEY, n INT)")
    db.execute("INSERT INTO t VALUES (1, 0)")

    def add(prefix: str) -> Callable[[], None]:
        def run() -> None:
            for i in range(8):
                db.execute(f"ALTER TABLE t ADD COLUMN {prefix}{i} INT NOT NULL DEFAULT {i}")
        return run

    _run_threads([add("a"), add("b")])
    row = {k: v for k, v in _rows(db, "SELECT * FROM t")[0].items() if not k.startswith("_")}
    assert row == {"id": 1, "n": 0, **{f"{p}{i}": i for p in "ab" for i in range(8)}}
    version = db.execute("SELECT max(schema_version) AS v FROM system.schemas "
                         "WHERE table_name = 't'").table.to_pylist()
    assert version == [{"v": 17}]


def _race_drop(db: kalam_engine.Engine) -> list[kalam_engine.KalamError]:
    """Two threads INSERT and flush while a third DROPs the table; the writers' errors."""
    done = threading.Event()
    failures: list[kalam_engine.KalamError] = []

    def write(start: int) -> None:
        k = start
        while not done.is_set():
            try:
                db.execute(f"INSERT INTO t VALUES ({k}, 1)")
                db.execute("STORAGE FLUSH TABLE t")
            except kalam_engine.KalamError as exc:
                failures.append(exc)
                return
            k += 1

    def drop() -> None:
        try:
            db.execute("INSERT INTO t VALUES (-1, 1)")
            db.execute("DROP TABLE t")
        finally:
            done.set()

    _run_threads([lambda: write(0), lambda: write(100_000), drop])
    return failures


def test_writes_racing_drop_leave_nothing_behind(tmp_path):
    """A DROP waits for running writes and flushes; what waited behind it fails clearly, and
    nothing of the dropped table reaches a table created later under the same name (not even
    after the database is opened again)."""
    for round_no in range(3):
        db = kalam_engine.connect(tmp_path / "data")
        db.execute("CREATE SHARED TABLE t (id INT PRIMARY KEY, n INT)")
        failures = _race_drop(db)
        assert all(exc.code == "TABLE_NOT_FOUND" for exc in failures), failures
        db.execute("CREATE SHARED TABLE t (id INT PRIMARY KEY, n INT)")
        assert _rows(db, "SELECT * FROM t") == [], f"round {round_no}"
        db.close()
        db = kalam_engine.connect(tmp_path / "data")
        assert _rows(db, "SELECT * FROM t") == [], f"round {round_no}, reopened"
        db.execute("DROP TABLE t")
        db.close()


def test_writes_reading_other_tables_do_not_deadlock_with_their_ddl():
    """Each statement holds only its target table's lock. With a one-entry schema cache every
    read of another table rebuilds that table's provider (under the cache's lock) while DDL on
    it holds its write lock and needs the cache next: the two must not wait on each other."""
    db = kalam_engine.connect(":memory:", cache_capacity=1)
    for name in ("a", "b"):
        db.execute(f"CREATE SHARED TABLE {name} (id INT PRIMARY KEY, n INT)")
        db.execute(f"INSERT INTO {name} VALUES (0, 0)")

    def copy(target: str, source: str) -> Callable[[], None]:
        def run() -> None:
            for i in range(1, 30):
                db.execute(f"INSERT INTO {target} (id, n) SELECT id + {i}, n FROM {source} "
                           "WHERE id = 0")
                db.execute(f"UPDATE {target} SET n = (SELECT count(*) FROM {source}) "
                           "WHERE id = 0")
        return run

    def alter(name: str) -> Callable[[], None]:
        def run() -> None:
            for i in range(10):
                db.execute(f"ALTER TABLE {name} ADD COLUMN c{i} INT")
        return run

    workers = [copy("a", "b"), copy("b", "a"), alter("a"), alter("b")]
    outcome: list[BaseException | None] = []

    def run_all() -> None:
        try:
            _run_threads(workers)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)
        else:
            outcome.append(None)

    runner = threading.Thread(target=run_all, daemon=True)
    runner.start()
    runner.join(timeout=120)  # a deadlock watchdog, not a speed check (this takes ~1 s)
    assert outcome, "writers and DDL on two tables deadlocked"
    if outcome[0] is not None:
        raise outcome[0]
    assert _rows(db, "SELECT count(*) AS n FROM a") == [{"n": 30}]
    db.close()


# --- randomized statements against a serial model ----------------------------------------------

KEYS = 3


def _random_statements(seed: int, thread_no: int, count: int) -> list[tuple[str, int, int]]:
    rng = random.Random(seed * 100 + thread_no)
    return [(rng.choice(["insert", "update", "update", "delete"]), rng.randrange(KEYS),
             rng.randrange(1, 10)) for _ in range(count)]


def _replay(entries: list[pa.Table], acknowledged: dict[str, tuple[str, int, int]],
            deletes: dict[int, int]) -> dict[int, tuple[int, str]]:
    """Replay the logged writes in _seq order on a model; each must be what its acknowledged
    statement does to the state before it. Returns the final state key -> (n, tag)."""
    state: dict[int, tuple[int, str]] = {}
    seen_tags: set[str] = set()
    seen_deletes = dict.fromkeys(range(KEYS), 0)
    rows = sorted((r for e in entries for r in e.to_pylist()), key=lambda r: r["_seq"])
    for r in rows:
        k = r["id"]
        if r["_deleted"]:
            assert state.get(k) == (r["n"], r["tag"]), f"DELETE of a stale version of {k}"
            del state[k]
            seen_deletes[k] += 1
            continue
        tag = r["tag"]
        assert tag not in seen_tags, f"statement {tag} wrote twice"
        seen_tags.add(tag)
        verb, key, amount = acknowledged[tag]
        assert key == k
        if verb == "insert":
            assert k not in state, f"INSERT {tag} of existing key {k}"
            state[k] = (amount, tag)
        else:
            assert k in state, f"UPDATE {tag} resurrected deleted key {k}"
            assert r["n"] == state[k][0] + amount, f"UPDATE {tag} lost an update"
            state[k] = (r["n"], tag)
    assert seen_tags == set(acknowledged), "an acknowledged write is missing from the log"
    assert seen_deletes == deletes, "acknowledged DELETEs and logged tombstones differ"
    return state


@pytest.mark.parametrize("seed", range(int(os.environ.get("KALAM_SOAK_SEEDS", "3"))))
def test_random_writes_equal_a_serial_replay(db, seed):
    db.execute("CREATE SHARED TABLE t (id INT PRIMARY KEY, n INT, tag TEXT)")
    acknowledged: dict[str, tuple[str, int, int]] = {}  # tag -> statement that changed a row
    deletes = dict.fromkeys(range(KEYS), 0)  # key -> acknowledged DELETEs of one row
    lock = threading.Lock()

    def worker(thread_no: int) -> None:
        for i, (verb, k, amount) in enumerate(_random_statements(seed, thread_no, 60)):
            tag = f"{thread_no}-{i}"
            if verb == "insert":
                try:
                    db.execute(f"INSERT INTO t VALUES ({k}, {amount}, '{tag}')")
                except kalam_engine.KalamError as exc:
                    assert exc.code == "INVALID_PARAMETER" and "already exists" in str(exc)
                    continue
                count = 1
            elif verb == "update":
                count = db.execute(f"UPDATE t SET n = n + {amount}, tag = '{tag}' "
                                   f"WHERE id = {k}").row_count
            else:
                count = db.execute(f"DELETE FROM t WHERE id = {k}").row_count
            assert count in (0, 1)
            with lock:
                if count and verb == "delete":
                    deletes[k] += 1
                elif count:
                    acknowledged[tag] = (verb, k, amount)

    _run_threads([lambda n=n: worker(n) for n in range(3)])
    entries = [rows for _, _, _, rows in
               db.storage.log.entries(TableId("default", "t").key)]
    model = _replay(entries, acknowledged, deletes)
    final = {r["id"]: (r["n"], r["tag"]) for r in _rows(db, "SELECT id, n, tag FROM t")}
    assert final == model
