"""Segment files are checked against their manifest row on every read: size, and a checksum
bound to the segment's identity (table, user scope, name). Flipped bits, a file copied from
another user's folder and a missing file are coded errors naming the file, never wrong rows."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest

import kalam_engine
from kalam_engine.model.errors import CorruptDataError, MissingFileError

FLIP_TRIALS = 150
USERS = ("alice", "bob")


def make_table(path: Path) -> dict[str, list[tuple]]:
    """Two users, two segments each plus a hot row; return every user's rows."""
    expected: dict[str, list[tuple]] = {u: [] for u in USERS}
    with kalam_engine.connect(path) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, body TEXT, n DOUBLE)")
        for batch in range(2):
            for u, user in enumerate(USERS):
                ids = range(batch * 50 + u * 1000, batch * 50 + u * 1000 + 50)
                db.execute("INSERT INTO app.t VALUES " + ", ".join(
                    f"({i}, '{user}-{i}', {i / 7})" for i in ids), user=user)
                expected[user] += [(i, f"{user}-{i}", i / 7) for i in ids]
            db.execute("STORAGE FLUSH TABLE app.t")
        db.execute("UPDATE app.t SET body = 'changed' WHERE id = 3", user="alice")
        expected["alice"][3] = (3, "changed", 3 / 7)
    return expected


def read(db: kalam_engine.Engine, user: str) -> list[tuple]:
    out = db.execute("SELECT id, body, n FROM app.t ORDER BY id", user=user).to_arrow()
    return [tuple(r.values()) for r in out.to_pylist()]


def segment(path: Path, user: str, batch: int) -> Path:
    return path / f"storage/app/t/{user}/batch-{batch}.parquet"


def test_intact_segments_read_back(tmp_path: Path) -> None:
    path = tmp_path / "data"
    expected = make_table(path)
    with kalam_engine.connect(path) as db:
        for user in USERS:
            assert read(db, user) == expected[user]
        checksums = db._db.query("SELECT checksum FROM segments")
        assert len(checksums) == 4 and all(c[0] for c in checksums)


def test_flipped_bits_are_always_detected(tmp_path: Path) -> None:
    """Seeded fuzz: random bit flips (1 to 8 bits anywhere in a segment); every read either
    returns exactly the right rows or raises CorruptDataError naming the file. A flip always
    changes the bytes, so every trial must be detected."""
    path = tmp_path / "data"
    expected = make_table(path)
    rng = random.Random(1105)
    files = [(user, segment(path, user, b)) for user in USERS for b in range(2)]
    originals = {f: f.read_bytes() for _u, f in files}
    detected = 0
    for _trial in range(FLIP_TRIALS):
        user, target = rng.choice(files)
        data = bytearray(originals[target])
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(data))
            data[at] ^= 1 << rng.randrange(8)
        changed = bytes(data) != originals[target]
        target.write_bytes(bytes(data))
        try:
            with kalam_engine.connect(path) as db:
                try:
                    got = read(db, user)
                except CorruptDataError as exc:
                    assert str(target) in str(exc)
                    assert exc.code == "INTERNAL_ERROR"
                    detected += 1
                else:
                    assert got == expected[user], "a damaged segment returned wrong rows"
                    assert not changed, "a changed segment was read without an error"
                other = next(u for u in USERS if u != user)
                assert read(db, other) == expected[other]  # the other user is unaffected
        finally:
            target.write_bytes(originals[target])
    assert detected == FLIP_TRIALS


def test_segment_copied_over_another_users_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data"
    expected = make_table(path)
    shutil.copy(segment(path, "alice", 0), segment(path, "bob", 0))
    with kalam_engine.connect(path) as db:
        with pytest.raises(CorruptDataError, match=r"bob/batch-0\.parquet"):
            read(db, "bob")
        assert read(db, "alice") == expected["alice"]


def test_checksum_is_bound_to_the_segments_place(tmp_path: Path) -> None:
    """Even when bob's manifest row is given the size and checksum of alice's file (as if the
    row were copied with it), alice's bytes do not pass as bob's segment."""
    path = tmp_path / "data"
    make_table(path)
    with sqlite3.connect(path / "kalam.sqlite") as conn:
        size, checksum = conn.execute(
            "SELECT size_bytes, checksum FROM segments WHERE path = ?",
            ("storage/app/t/alice/batch-0.parquet",)).fetchone()
        conn.execute("UPDATE segments SET size_bytes = ?, checksum = ? WHERE path = ?",
                     (size, checksum, "storage/app/t/bob/batch-0.parquet"))
    shutil.copy(segment(path, "alice", 0), segment(path, "bob", 0))
    with kalam_engine.connect(path) as db, pytest.raises(CorruptDataError,
                                                        match=r"bob/batch-0\.parquet"):
        read(db, "bob")
    from kalam_engine.storage.checksums import segment_checksum

    data = b"same bytes"
    assert segment_checksum("app:t", "alice", "p", data) != segment_checksum(
        "app:t", "bob", "p", data)


def test_missing_segment_is_a_coded_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "data"
    expected = make_table(path)
    segment(path, "bob", 1).unlink()
    with kalam_engine.connect(path) as db:
        with pytest.raises(MissingFileError, match=r"bob/batch-1\.parquet") as exc:
            db.execute("INSERT INTO app.t VALUES (1075, 'dup', 0)", user="bob")
        assert exc.value.code == "MISSING_FILE"
        with pytest.raises(MissingFileError, match=r"bob/batch-1\.parquet"):
            read(db, "bob")
        assert read(db, "alice") == expected["alice"]
    # The recovery command can forget the lost segment; bob keeps the rows of the other one.
    from kalam_engine.recover import recover

    report = recover(path, drop_damaged=True)
    assert report.forgotten == ["storage/app/t/bob/batch-1.parquet"]
    with kalam_engine.connect(path) as db:
        assert read(db, "bob") == [r for r in expected["bob"] if r[0] < 1050]


def test_manifest_without_checksums_still_opens_and_checks_size(tmp_path: Path) -> None:
    """A directory written before checksums existed (no checksum column, no pending_files
    table) opens; its segments are checked by size."""
    path = tmp_path / "data"
    expected = make_table(path)
    with sqlite3.connect(path / "kalam.sqlite") as conn:
        conn.execute("ALTER TABLE segments DROP COLUMN checksum")
        conn.execute("DROP TABLE pending_files")
    with kalam_engine.connect(path) as db:
        assert read(db, "alice") == expected["alice"]
        assert db._db.query("SELECT COUNT(*) FROM segments WHERE checksum IS NULL") == [(4,)]
    target = segment(path, "alice", 1)
    target.write_bytes(target.read_bytes()[:-10])
    with kalam_engine.connect(path) as db:
        with pytest.raises(CorruptDataError, match=r"alice/batch-1\.parquet"):
            read(db, "alice")
        assert read(db, "bob") == expected["bob"]
