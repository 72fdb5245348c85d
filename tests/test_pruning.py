"""Segment pruning by manifest statistics: the pure decision, then the primary-key check and
filtered scans of a real engine with real Parquet segments, counted by ``SegmentFiles.reads``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

import kalam_engine
from kalam_engine.model.context import ExecutionContext, Role, TableId
from kalam_engine.model.definitions import SEQ_COLUMN
from kalam_engine.model.errors import ConstraintError
from kalam_engine.storage.manifest import Segment, new_segment
from kalam_engine.storage.pruning import segments_for_filter, segments_holding

ALICE = ExecutionContext("alice", Role.USER, "app")
TABLE = TableId("app", "t")
SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.string()), (SEQ_COLUMN, pa.int64()),
                    ("_deleted", pa.bool_())])


def seg(batch_no: int, pk: tuple[Any, Any], seq: tuple[int, int]) -> Segment:
    return new_segment("app:t", "alice", batch_no, f"storage/app/t/alice/batch-{batch_no}.parquet",
                       seq, pk, 10, 100, 1)


SEGS = [seg(0, (0, 9), (100, 199)), seg(1, (10, 19), (200, 299)), seg(2, (20, 29), (300, 399))]


def batches(segments: list[Segment]) -> list[int]:
    return [s.batch_no for s in segments]


# --- the pure decision ------------------------------------------------------------------------
@pytest.mark.parametrize(("condition", "expected"), [
    (pc.field("id") == 15, [1]),
    (pc.field("id") == 30, []),
    (pc.field("id").isin([3, 25]), [0, 2]),
    ((pc.field("id") > 12) & (pc.field("id") < 21), [1, 2]),
    (pc.field("id") >= 29, [2]),
    (pc.field(SEQ_COLUMN) > 250, [1, 2]),
    (pc.field(SEQ_COLUMN) <= 199, [0]),
    ((pc.field("id") == 3) | (pc.field(SEQ_COLUMN) >= 300), [0, 2]),
    (pc.field("v") == "x", [0, 1, 2]),  # no statistics on other columns
    (~(pc.field("id") == 3), [0, 1, 2]),
])
def test_segments_for_filter(condition: pc.Expression, expected: list[int]) -> None:
    assert batches(segments_for_filter(SEGS, condition, SCHEMA, "id")) == expected


def test_segments_for_filter_keeps_everything_it_cannot_reason_about() -> None:
    assert batches(segments_for_filter(SEGS, pc.field("nope") == 1, SCHEMA, "id")) == [0, 1, 2]
    # bounds of another type (the key column's type changed since): only _seq facts remain
    text = pa.schema([("id", pa.string()), (SEQ_COLUMN, pa.int64())])
    assert batches(segments_for_filter(SEGS, pc.field("id") == "15", text, "id")) == [0, 1, 2]
    unbounded = [seg(0, (None, None), (1, 5))]
    assert batches(segments_for_filter(unbounded, pc.field("id") == 3, SCHEMA, "id")) == [0]
    assert segments_for_filter([], pc.field("id") == 3, SCHEMA, "id") == []
    mask = pa.array([True])  # Table.filter also takes a mask: nothing to reason about
    assert batches(segments_for_filter(SEGS, mask, SCHEMA, "id")) == [0, 1, 2]  # type: ignore[arg-type]


def test_segments_holding() -> None:
    assert batches(segments_holding(SEGS, {15})) == [1]
    assert batches(segments_holding(SEGS, {5, 29, 40})) == [0, 2]
    assert segments_holding(SEGS, {-1, 30}) == []
    assert segments_holding(SEGS, set()) == []
    assert batches(segments_holding(SEGS, {"15"})) == [0, 1, 2]  # other type: cannot prune


# --- a real engine ----------------------------------------------------------------------------
def build(path: Path, flushes: list[list[int]]) -> None:
    """One segment per entry of ``flushes`` for alice (and one for bob), then close."""
    db = kalam_engine.connect(path)
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)")
    provider = db.cache.get_provider(TABLE)
    for ids in flushes:
        provider.insert(ALICE, pa.table({"id": ids, "v": [f"v{i}" for i in ids]}))
        db.execute("STORAGE FLUSH TABLE app.t")
    db.execute("INSERT INTO app.t VALUES (5, 'bob')", user="bob")
    db.execute("STORAGE FLUSH TABLE app.t")
    db.close()


@pytest.fixture
def three_segments(tmp_path: Path) -> Iterator[Any]:
    """alice: batch-0 ids 0..9, batch-1 ids 10..19, batch-2 ids 20..29; opened with cold caches."""
    build(tmp_path, [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))])
    db = kalam_engine.connect(tmp_path)
    db.storage.files.reads.clear()
    yield db
    db.close()


def read_batches(db: Any) -> list[int]:
    return sorted(int(p.rsplit("-", 1)[1].split(".")[0]) for p in db.storage.files.reads
                  if "/alice/" in p)


def test_insert_of_a_key_outside_every_segment_reads_nothing(three_segments: Any) -> None:
    db = three_segments
    db.execute("INSERT INTO app.t VALUES (100, 'new')", user="alice")
    assert db.storage.files.reads == {}
    with pytest.raises(ConstraintError):
        db.execute("INSERT INTO app.t VALUES (100, 'again')", user="alice")  # decided hot
    assert db.storage.files.reads == {}


def test_insert_reads_only_the_segment_whose_range_holds_the_key(three_segments: Any) -> None:
    db = three_segments
    with pytest.raises(ConstraintError, match="'15' already exists"):
        db.execute("INSERT INTO app.t VALUES (15, 'dup')", user="alice")
    assert read_batches(db) == [1]
    db.execute("DELETE FROM app.t WHERE id = 15", user="alice")  # SQL DELETE scans everything
    db.storage.files.reads.clear()
    db.close()
    db = kalam_engine.connect(db.path)  # cold caches; the tombstone is hot
    db.execute("INSERT INTO app.t VALUES (15, 'back')", user="alice")
    assert db.storage.files.reads == {}  # the hot tombstone is newer than every segment
    with pytest.raises(ConstraintError):
        db.execute("INSERT INTO app.t VALUES (3, 'dup'), (101, 'new')", user="alice")
    assert read_batches(db) == [0]
    db.close()


def test_insert_after_a_flushed_delete_sees_the_cold_tombstone(tmp_path: Path) -> None:
    build(tmp_path, [list(range(0, 10)), list(range(10, 20))])
    db = kalam_engine.connect(tmp_path)
    db.execute("DELETE FROM app.t WHERE id = 4", user="alice")
    db.execute("STORAGE FLUSH TABLE app.t")  # batch-2: the tombstone of 4, range [4, 4]
    db.close()
    db = kalam_engine.connect(tmp_path)
    db.storage.files.reads.clear()
    db.execute("INSERT INTO app.t VALUES (4, 'again')", user="alice")
    assert read_batches(db) == [0, 2]
    with pytest.raises(ConstraintError):
        db.execute("INSERT INTO app.t VALUES (12, 'dup')", user="alice")
    assert read_batches(db) == [0, 1, 2]
    db.close()


def test_insert_uses_the_cached_view_once_built(three_segments: Any) -> None:
    db = three_segments
    assert len(db.execute("SELECT * FROM app.t", user="alice").to_arrow()) == 30
    db.storage.files.reads.clear()
    with pytest.raises(ConstraintError):
        db.execute("INSERT INTO app.t VALUES (15, 'dup')", user="alice")
    assert db.storage.files.reads == {}


@pytest.mark.parametrize(("condition", "expected"), [
    (pc.field("id") == 15, [1]),
    (pc.field("id").isin([3, 25, 99]), [0, 2]),
    ((pc.field("id") >= 8) & (pc.field("id") < 12), [0, 1]),
    (pc.field("id") > 1000, []),
])
def test_scan_reads_only_matching_segments(three_segments: Any, condition: pc.Expression,
                                           expected: list[int]) -> None:
    db = three_segments
    provider = db.cache.get_provider(TABLE)
    pruned = provider.read(ALICE, filters=condition)
    assert read_batches(db) == expected
    full = provider.read(ALICE).filter(condition)
    assert pruned.sort_by("id").equals(full.sort_by("id"))


def test_scan_by_seq_reads_only_newer_segments(three_segments: Any) -> None:
    db = three_segments
    provider = db.cache.get_provider(TABLE)
    segments = db.storage.existing_store(TABLE).partition("alice").segments
    since = pc.field(SEQ_COLUMN) > segments[0].max_seq
    pruned = provider.read(ALICE, ["id"], filters=since)
    assert read_batches(db) == [1, 2]
    assert sorted(pruned["id"].to_pylist()) == list(range(10, 30))


def test_scan_before_a_seq_drops_rows_a_skipped_segment_replaced(tmp_path: Path) -> None:
    build(tmp_path, [list(range(0, 10)), list(range(10, 20))])
    db = kalam_engine.connect(tmp_path)
    db.execute("UPDATE app.t SET v = 'new' WHERE id = 3", user="alice")
    db.execute("STORAGE FLUSH TABLE app.t")  # batch-2 holds the newer version of 3
    db.close()
    db = kalam_engine.connect(tmp_path)
    db.storage.files.reads.clear()
    provider = db.cache.get_provider(TABLE)
    segments = db.storage.existing_store(TABLE).partition("alice").segments
    before = pc.field(SEQ_COLUMN) <= segments[0].max_seq
    pruned = provider.read(ALICE, filters=before)
    # batch-2 cannot match but may hold newer versions of batch-0's keys: its key column is read
    assert read_batches(db) == [0, 2]
    assert sorted(pruned["id"].to_pylist()) == [k for k in range(10) if k != 3]
    db.close()


# --- property: pruned reads equal full reads --------------------------------------------------
SPAN = 8  # round r inserts keys r*SPAN .. r*SPAN+SPAN-1, so segments cover narrow key ranges
write = hs.tuples(hs.sampled_from(["insert", "insert", "update", "delete"]),
                  hs.lists(hs.integers(0, 1000), min_size=1, max_size=4))
rounds = hs.lists(hs.tuples(hs.lists(write, min_size=1, max_size=4), hs.booleans()),
                  min_size=1, max_size=5)  # (writes, flush afterwards?)
probe = hs.tuples(hs.sampled_from(["eq", "in", "range", "seq_gt", "seq_lt", "seq_le"]),
                  hs.lists(hs.integers(-2, 5 * SPAN + 2), min_size=1, max_size=4),
                  hs.integers(0, 100))


def condition_for(kind: str, keys: list[int], pick: int, seqs: list[int]) -> pc.Expression:
    seq = seqs[pick % len(seqs)] if seqs else 0
    if kind == "eq":
        return pc.field("id") == keys[0]
    if kind == "in":
        return pc.field("id").isin(keys)
    if kind == "range":
        return (pc.field("id") >= min(keys)) & (pc.field("id") <= max(keys))
    if kind == "seq_gt":
        return pc.field(SEQ_COLUMN) > seq
    if kind == "seq_lt":
        return pc.field(SEQ_COLUMN) < seq
    return (pc.field(SEQ_COLUMN) <= seq) & (pc.field("id") >= keys[0])


def apply(db: Any, model: dict[int, str], kind: str, keys: list[int], step: int) -> None:
    provider = db.cache.get_provider(TABLE)
    if kind == "insert":
        rows = pa.table({"id": keys, "v": [f"i{step}" for _ in keys]})
        if model.keys() & set(keys):
            with pytest.raises(ConstraintError):
                provider.insert(ALICE, rows)
        else:
            provider.insert(ALICE, rows)
            model.update(dict.fromkeys(keys, f"i{step}"))
        return
    present = [k for k in keys if k in model]
    if not present:
        return
    values = [model[k] if kind == "delete" else f"u{step}" for k in present]
    rows = pa.table({"id": present, "v": values})
    if kind == "update":
        provider.update(ALICE, rows)
        model.update(dict.fromkeys(present, f"u{step}"))
    else:
        provider.delete(ALICE, rows)
        for k in present:
            del model[k]


def run_rounds(db: Any, plan: list[tuple[list[tuple[str, list[int]]], bool]]) -> dict[int, str]:
    model: dict[int, str] = {}
    step = 0
    for r, (writes, flush) in enumerate(plan):
        for kind, draws in writes:
            step += 1
            if kind == "insert":  # keys of this round, mostly new
                keys = sorted({r * SPAN + d % SPAN for d in draws})
            else:  # any key written so far
                keys = sorted({d % ((r + 1) * SPAN) for d in draws})
            apply(db, model, kind, keys, step)
        if flush:
            db.execute("STORAGE FLUSH TABLE app.t")
    return model


@settings(max_examples=120, deadline=None, derandomize=True)
@given(plan=rounds, probes=hs.lists(probe, min_size=1, max_size=4))
def test_pruned_reads_equal_full_reads(plan: list[tuple[list[tuple[str, list[int]]], bool]],
                                       probes: list[tuple[str, list[int], int]]) -> None:
    path = Path(tempfile.mkdtemp(prefix="kalam-prune-"))
    try:
        db = kalam_engine.connect(path)
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)")
        model = run_rounds(db, plan)
        db.close()

        db = kalam_engine.connect(path)  # cold caches: pruning applies
        provider = db.cache.get_provider(TABLE)
        store = db.storage.store_for(provider.core.definition)
        part = store.partition("alice")
        seqs = [s for segment in part.segments for s in (segment.min_seq - 1, segment.max_seq)]
        conditions = [condition_for(kind, keys, pick, seqs) for kind, keys, pick in probes]
        pruned = []
        for condition, (_kind, keys, _pick) in zip(conditions, probes, strict=True):
            for wanted in ({keys[-1]}, set(keys)):
                part.attach([])  # forget the caches a previous check built
                assert store.taken_keys("alice", provider.schema, wanted) == wanted & set(model)
            part.attach([])
            pruned.append(provider.read(ALICE, filters=condition))
        full = provider.read(ALICE)  # builds the merged view
        assert dict(zip(full["id"].to_pylist(), full["v"].to_pylist(), strict=True)) == model
        for condition, rows in zip(conditions, pruned, strict=True):
            assert rows.sort_by("id").equals(full.filter(condition).sort_by("id")), condition
        db.close()
    finally:
        shutil.rmtree(path, ignore_errors=True)
