"""One read path: the key/_seq bounds sqlglot finds in a statement's WHERE reach
``provider.read``, so a filtered SELECT over cold Parquet segments opens only the segments that
can match (counted by ``SegmentFiles.reads``), with exactly the answers of an unpruned read."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

import kalam_engine
from kalam_engine.model.context import ExecutionContext, Role, TableId
from kalam_engine.model.definitions import SEQ_COLUMN
from kalam_engine.query.where_bounds import bound_expression, where_bounds

ALICE = ExecutionContext("alice", Role.USER, "app")
TABLE = TableId("app", "t")
SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.string()), (SEQ_COLUMN, pa.int64()),
                    ("_deleted", pa.bool_())])
SEGMENTS = 20
PER_SEGMENT = 50  # segment b holds ids b*50 .. b*50+49


# --- what sqlglot finds -----------------------------------------------------------------------
@pytest.mark.parametrize(("sql", "params", "expected"), [
    ("SELECT * FROM app.t WHERE id > 5 AND v = 'x'", None, "(id > 5)"),
    ("SELECT * FROM t WHERE 5 < id", None, "(id > 5)"),
    ("SELECT * FROM t WHERE id = $1 AND _seq >= 10", [7], "((id == 7) and (_seq >= 10))"),
    ("SELECT * FROM t x WHERE x.id BETWEEN 3 AND 9", None, "((id >= 3) and (id <= 9))"),
    ("SELECT * FROM t WHERE (id < 3 OR id > 9) AND v <> 'a'", None, "((id < 3) or (id > 9))"),
    ("SELECT count(*) FROM t WHERE id IN (1, 2) GROUP BY v ORDER BY 1 LIMIT 3", None,
     "is_in(id"),
    ("SELECT * FROM t WHERE id > 5 OR v = 'a'", None, None),  # one branch unbounded
    ("SELECT * FROM t WHERE NOT id > 5", None, None),
    ("SELECT * FROM t WHERE id NOT IN (1, 2)", None, None),
    ("SELECT * FROM t WHERE id > 'x'", None, None),  # DataFusion would coerce
    ("SELECT * FROM t WHERE id > 2.5", None, None),
    ("SELECT * FROM t WHERE id = NULL", None, None),
    ("SELECT * FROM t WHERE id = $2", [1], None),  # no such parameter
    ("SELECT * FROM t WHERE id = $1", ["3"], None),  # a text value for a BIGINT key
    ("SELECT * FROM t WHERE id = 99999999999999999999", None, None),
    ("SELECT * FROM t WHERE u.id > 5", None, None),  # another table's column
    ("SELECT * FROM t WHERE id BETWEEN SYMMETRIC 9 AND 3", None, None),
    ("SELECT * FROM t a JOIN u b ON a.id = b.id WHERE a.id > 3", None, None),
    ("SELECT * FROM t WHERE id IN (SELECT id FROM u)", None, None),
    ("SELECT * FROM t WHERE id > (SELECT max(id) FROM t)", None, None),
    ("SELECT * FROM t WHERE id > 1 UNION ALL SELECT * FROM t", None, None),
    ("SELECT * FROM t", None, None),
    ("this is not sql ((", None, None),
])
def test_bounds_sqlglot_finds(sql: str, params: list | None, expected: str | None) -> None:
    found = where_bounds(sql)
    expression = None if found is None else bound_expression(found.bound, SCHEMA, "id", params)
    if expected is None:
        assert expression is None
    else:
        assert expression is not None and str(expression).startswith(expected)


def test_only_the_key_and_seq_are_bounded() -> None:
    found = where_bounds("SELECT * FROM t WHERE id = 3 AND _seq > 4")
    assert found is not None and found.table == (None, "t")
    # a table without a primary key: only _seq carries statistics
    assert str(bound_expression(found.bound, SCHEMA, None, None)) == "(_seq > 4)"
    text_key = pa.schema([("id", pa.string()), (SEQ_COLUMN, pa.int64())])
    assert str(bound_expression(found.bound, text_key, "id", None)) == "(_seq > 4)"
    named = where_bounds("SELECT * FROM kalam.app.t WHERE id = 'a'")
    assert named is not None and named.table == ("app", "t")
    assert str(bound_expression(named.bound, text_key, "id", None)) == '(id == "a")'
    assert where_bounds("SELECT * FROM other.app.t WHERE id = 1") is None


# --- twenty cold segments ---------------------------------------------------------------------
def build(path: Path, segments: int = SEGMENTS) -> None:
    """alice: ``segments`` flushed segments of PER_SEGMENT ids each; bob: one segment."""
    db = kalam_engine.connect(path)
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)")
    provider = db.cache.get_provider(TABLE)
    for b in range(segments):
        ids = list(range(b * PER_SEGMENT, (b + 1) * PER_SEGMENT))
        provider.insert(ALICE, pa.table({"id": ids, "v": [f"v{i}" for i in ids]}))
        db.execute("STORAGE FLUSH TABLE app.t")
    db.execute("INSERT INTO app.t VALUES (120, 'bob')", user="bob")
    db.execute("STORAGE FLUSH TABLE app.t")
    db.close()


@pytest.fixture(scope="module")
def cold_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cold")
    build(path)
    return path


@pytest.fixture
def cold(cold_dir: Path, tmp_path: Path) -> Iterator[Any]:
    """An engine just opened on a copy of the twenty segments: nothing of them read yet."""
    copy = tmp_path / "db"
    shutil.copytree(cold_dir, copy)
    db = kalam_engine.connect(copy)
    db.storage.files.reads.clear()
    yield db
    db.close()


def opened(db: Any, user: str = "alice") -> list[int]:
    """The batch numbers of ``user``'s segment files read so far."""
    return sorted(int(p.rsplit("-", 1)[1].split(".")[0]) for p in db.storage.files.reads
                  if f"/{user}/" in p)


def ids(table: pa.Table) -> list[int]:
    return sorted(table["id"].to_pylist())


@pytest.mark.parametrize(("where", "params", "segments", "expected"), [
    ("id BETWEEN 120 AND 130", None, [2], list(range(120, 131))),
    ("id = $1", [777], [15], [777]),
    ("id IN (3, 999) AND v LIKE 'v%'", None, [0, 19], [3, 999]),
    ("(id < 10 OR id >= 990) AND v <> 'v0'", None, [0, 19], [*range(1, 10), *range(990, 1000)]),
    ("id > 5000", None, [], []),
])
def test_filtered_select_opens_only_the_matching_segments(
        cold: Any, where: str, params: list | None, segments: list[int],
        expected: list[int]) -> None:
    rows = cold.execute(f"SELECT id, v FROM app.t WHERE {where}", user="alice",
                        params=params).to_arrow()
    assert ids(rows) == expected
    assert opened(cold) == segments
    assert opened(cold, "bob") == []  # another user's partition is never touched


def test_without_the_pushed_filter_every_segment_is_opened(cold: Any) -> None:
    """The counter the test above relies on: the same statement, bounds not pushed."""
    cold.runner.push_filters = False
    rows = cold.execute("SELECT id FROM app.t WHERE id BETWEEN 120 AND 130",
                        user="alice").to_arrow()
    assert ids(rows) == list(range(120, 131))
    assert opened(cold) == list(range(SEGMENTS))


def test_the_lazy_adapter_pushes_the_same_bounds(cold: Any) -> None:
    cold.runner.prefetch = False  # DataFusion asks for the table while planning
    rows = cold.execute("SELECT id FROM app.t WHERE id >= 960", user="alice").to_arrow()
    assert ids(rows) == list(range(960, 1000))
    assert opened(cold) == [19]


def test_seq_bound_opens_only_newer_segments(cold: Any) -> None:
    part = cold.storage.existing_store(TABLE).partition("alice")
    since = part.segments[17].max_seq
    rows = cold.execute(f"SELECT id FROM app.t WHERE _seq > {since}", user="alice").to_arrow()
    assert ids(rows) == list(range(18 * PER_SEGMENT, 20 * PER_SEGMENT))
    assert opened(cold) == [18, 19]


def test_seq_upper_bound_reads_the_key_columns_of_newer_segments(cold: Any) -> None:
    """An update flushed into a new segment hides the old version that a ``_seq <=`` bound
    selects: the newer segments cannot match, but their keys are read to drop what they
    replaced."""
    cold.execute("UPDATE app.t SET v = 'new' WHERE id = 7", user="alice")
    cold.execute("STORAGE FLUSH TABLE app.t")
    cold.close()
    db = kalam_engine.connect(cold.path)
    try:
        db.storage.files.reads.clear()
        part = db.storage.existing_store(TABLE).partition("alice")
        until = part.segments[0].max_seq
        rows = db.execute(f"SELECT id, v FROM app.t WHERE _seq <= {until}",
                          user="alice").to_arrow()
        assert ids(rows) == [i for i in range(PER_SEGMENT) if i != 7]
        assert opened(db) == [0, SEGMENTS]  # batch-20 holds the newer version of 7
    finally:
        db.close()


def test_repeated_pruned_reads_give_way_to_the_cached_view(cold: Any) -> None:
    """Pruned reads cache nothing; after opening as many files as there are segments, the
    next read builds the merged view, and later reads open nothing."""
    for b in range(SEGMENTS):
        cold.execute(f"SELECT id FROM app.t WHERE id = {b * PER_SEGMENT}", user="alice")
    assert sum(cold.storage.files.reads.values()) == SEGMENTS
    cold.execute("SELECT id FROM app.t WHERE id = 1", user="alice")  # builds the view
    assert sum(cold.storage.files.reads.values()) == 2 * SEGMENTS
    rows = cold.execute("SELECT id FROM app.t WHERE id = 3", user="alice").to_arrow()
    assert ids(rows) == [3]
    assert sum(cold.storage.files.reads.values()) == 2 * SEGMENTS


def test_a_filtered_read_is_the_requests_own(cold: Any) -> None:
    rows = cold.execute("SELECT id, v FROM app.t WHERE id = 120", user="bob").to_arrow()
    assert rows.to_pylist() == [{"id": 120, "v": "bob"}]
    assert opened(cold) == []
    rows = cold.execute("SELECT id, v FROM app.t WHERE id = 120", user="alice").to_arrow()
    assert rows.to_pylist() == [{"id": 120, "v": "v120"}]
    assert cold.execute("SELECT id FROM app.t WHERE id = 120", user="carol").to_arrow() \
        .num_rows == 0


# --- property: the same answers with and without pushed bounds --------------------------------
SPAN = 8  # round r inserts keys r*SPAN .. r*SPAN+SPAN-1: segments cover narrow key ranges
write = hs.tuples(hs.sampled_from(["insert", "insert", "update", "delete"]),
                  hs.lists(hs.integers(0, 1000), min_size=1, max_size=4))
rounds = hs.lists(hs.tuples(hs.lists(write, min_size=1, max_size=4), hs.booleans()),
                  min_size=1, max_size=6)  # (writes, flush afterwards?)
query = hs.tuples(hs.sampled_from(["between", "in", "eq_param", "seq_gt", "seq_le", "seq_lt_or",
                                   "or_ranges", "deleted"]),
                  hs.integers(-2, 6 * SPAN + 2), hs.integers(0, 3 * SPAN), hs.integers(0, 100))


def statement(kind: str, low: int, width: int, pick: int,
              seqs: list[int]) -> tuple[str, list | None]:
    high = low + width
    seq = seqs[pick % len(seqs)] if seqs else 0
    where = {
        "between": f"id BETWEEN {low} AND {high}",
        "in": f"id IN ({low}, {high}, {low + 1})",
        "eq_param": "id = $1",
        "seq_gt": f"_seq > {seq}",
        "seq_le": f"_seq <= {seq} AND id >= {low}",
        "seq_lt_or": f"_seq < {seq} OR id = {low}",
        "or_ranges": f"(id < {low} OR id > {high}) AND v <> 'x'",
        "deleted": f"id <= {high} AND _seq >= {seq}",
    }[kind]
    columns = "id, v, _seq, _deleted" if kind == "deleted" else "id, v"
    return f"SELECT {columns} FROM app.t WHERE {where} ORDER BY id", \
        [low] if kind == "eq_param" else None


def apply(db: Any, model: dict[int, str], bob: set[int], kind: str, keys: list[int],
          step: int) -> None:
    """One write as alice through SQL (bob gets the keys he lacks of each insert, as noise)."""
    if kind == "insert":
        fresh = [k for k in keys if k not in model]
        if fresh:
            values = ", ".join(f"({k}, 'i{step}')" for k in fresh)
            db.execute(f"INSERT INTO app.t VALUES {values}", user="alice")
            model.update(dict.fromkeys(fresh, f"i{step}"))
        news = [k for k in keys if k not in bob]
        if news:
            values = ", ".join(f"({k}, 'bob')" for k in news)
            db.execute(f"INSERT INTO app.t VALUES {values}", user="bob")
            bob.update(news)
        return
    present = [k for k in keys if k in model]
    if not present:
        return
    listed = ", ".join(map(str, present))
    if kind == "update":
        db.execute(f"UPDATE app.t SET v = 'u{step}' WHERE id IN ({listed})", user="alice")
        model.update(dict.fromkeys(present, f"u{step}"))
    else:
        db.execute(f"DELETE FROM app.t WHERE id IN ({listed})", user="alice")
        for k in present:
            del model[k]


def run_rounds(db: Any, plan: list[tuple[list[tuple[str, list[int]]], bool]]) -> dict[int, str]:
    model: dict[int, str] = {}
    bob: set[int] = set()
    step = 0
    for r, (writes, flush) in enumerate(plan):
        for kind, draws in writes:
            step += 1
            if kind == "insert":
                keys = sorted({r * SPAN + d % SPAN for d in draws})
            else:  # any key written so far: older versions live in older segments
                keys = sorted({d % ((r + 1) * SPAN) for d in draws})
            apply(db, model, bob, kind, keys, step)
        if flush:
            db.execute("STORAGE FLUSH TABLE app.t")
    return model


@settings(max_examples=50, deadline=None, derandomize=True)
@given(plan=rounds, queries=hs.lists(query, min_size=1, max_size=4))
def test_same_answers_with_and_without_pushed_bounds(
        plan: list[tuple[list[tuple[str, list[int]]], bool]],
        queries: list[tuple[str, int, int, int]]) -> None:
    path = Path(tempfile.mkdtemp(prefix="kalam-readpath-"))
    try:
        db = kalam_engine.connect(path)
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)")
        model = run_rounds(db, plan)
        db.close()

        db = kalam_engine.connect(path)  # cold: the segments are not read yet
        part = db.storage.existing_store(TABLE).partition("alice")
        seqs = [s for seg in part.segments for s in (seg.min_seq - 1, seg.max_seq)]
        statements = [statement(*q, seqs) for q in queries]
        pushed = []
        for sql, params in statements:
            part.attach([])  # forget what an earlier statement cached: prune again
            pushed.append(db.execute(sql, user="alice", params=params).to_arrow())
        db.runner.push_filters = False
        everything = db.execute("SELECT id, v FROM app.t", user="alice").to_arrow()
        assert dict(zip(everything["id"].to_pylist(), everything["v"].to_pylist(),
                        strict=True)) == model
        for (sql, params), rows in zip(statements, pushed, strict=True):
            assert rows.equals(db.execute(sql, user="alice", params=params).to_arrow()), sql
        db.close()
    finally:
        shutil.rmtree(path, ignore_errors=True)
