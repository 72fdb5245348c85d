"""Crash safety: a writer process killed with SIGKILL at random moments (some during a flush)
never loses an acknowledged write and never duplicates a row.

The child prints ``W <op> ...`` before each write and ``OK`` after it is acknowledged, so at a
kill at most one write is in doubt; the parent reopens the database and checks every
acknowledged insert, update and delete.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import kalam_engine

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

TRIALS = int(os.environ.get("KALAM_CRASH_TRIALS", "24"))  # a long soak sets more
USERS = ("alice", "bob")
CHILD = r"""
import random, sys
import kalam_engine

path, seed, first_id = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
db = kalam_engine.connect(path)
out = sys.stdout
out.write("READY\n"); out.flush()
next_id, mine = first_id, {u: [] for u in ("alice", "bob")}
while True:
    user = rng.choice(("alice", "bob"))
    op = rng.random()
    if op < 0.45 or len(mine[user]) < 3:
        n = 1 if rng.random() < 0.6 else rng.randint(2, 6)
        ids = list(range(next_id, next_id + n))
        next_id += n
        out.write(f"W I {user} {' '.join(map(str, ids))}\n"); out.flush()
        db.execute("INSERT INTO app.m (id, body) VALUES "
                   + ", ".join(f"({i}, 'v{i}')" for i in ids), user=user)
        mine[user].extend(ids)
    elif op < 0.65:
        i = rng.choice(mine[user])
        body = f"u{rng.randint(0, 10**6)}"
        out.write(f"W U {user} {i} {body}\n"); out.flush()
        db.execute(f"UPDATE app.m SET body = '{body}' WHERE id = {i}", user=user)
    elif op < 0.8:
        i = mine[user].pop(rng.randrange(len(mine[user])))
        out.write(f"W D {user} {i}\n"); out.flush()
        db.execute(f"DELETE FROM app.m WHERE id = {i}", user=user)
    elif op < 0.9:
        out.write("W F\n"); out.flush()
        db.execute("STORAGE FLUSH TABLE app.m")
    else:
        out.write("W C\n"); out.flush()
        db.execute("STORAGE COMPACT TABLE app.m")
    out.write("OK\n"); out.flush()
"""


class Model:
    """What must be in the table: acknowledged state plus the one write in doubt."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], str] = {}
        self.doubt: list[str] = []

    def apply(self, words: list[str]) -> None:
        if not words:
            return
        kind = words[0]
        if kind == "I":
            for i in words[2:]:
                self.rows[(words[1], int(i))] = f"v{i}"
        elif kind == "U":
            self.rows[(words[1], int(words[2]))] = words[3]
        elif kind == "D":
            self.rows.pop((words[1], int(words[2])), None)

    def check(self, seen: dict[tuple[str, int], str]) -> None:
        """Compare with what the reopened database holds, then settle the write in doubt."""
        before = dict(self.rows)
        self.apply(self.doubt)  # a write is all or nothing: either state, never a mix
        if seen != self.rows:
            lost = {k: v for k, v in before.items() if seen.get(k) != v}
            extra = {k: v for k, v in seen.items() if before.get(k) != v}
            assert seen == before, f"in doubt {self.doubt}: lost {lost}, unexpected {extra}"
        self.rows = dict(seen)
        self.doubt = []


def read_all(db: kalam_engine.Engine) -> dict[tuple[str, int], str]:
    seen: dict[tuple[str, int], str] = {}
    for user in USERS:
        table = db.execute("SELECT id, body FROM app.m", user=user).to_arrow()
        ids = table["id"].to_pylist()
        assert len(ids) == len(set(ids)), f"duplicate rows for {user}"
        seen.update({(user, i): b for i, b in zip(ids, table["body"].to_pylist(), strict=True)})
    return seen


def run_child(path: Path, seed: int, first_id: int, kill_after: float, kill_on_flush: int,
              model: Model) -> str:
    """Run the writer until it is killed (after ``kill_after`` seconds, or as its
    ``kill_on_flush``-th flush or compaction starts); feed acknowledged writes into ``model``."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(seed), str(first_id)],
                            stdout=subprocess.PIPE, text=True, bufsize=1)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = None
    flushes = 0
    how = "timer"
    while True:
        timeout = 30.0 if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            break
        if line is None:
            raise AssertionError(f"writer exited early with code {proc.wait()}")
        if line == "READY":
            if not kill_on_flush:
                deadline = time.monotonic() + kill_after
        elif line == "OK":
            model.apply(model.doubt)
            model.doubt = []
        else:
            model.doubt = line.split()[1:]
            if model.doubt[0] in ("F", "C"):
                flushes += 1
                if flushes == kill_on_flush:
                    how = "during flush"
                    break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    while True:  # lines written before the kill still count
        line = lines.get()
        if line is None:
            break
        if line == "OK":
            model.apply(model.doubt)
            model.doubt = []
        elif line != "READY":
            model.doubt = line.split()[1:]
    return how


def test_acknowledged_rows_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "data"
    with kalam_engine.connect(path) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.m (id BIGINT PRIMARY KEY, body TEXT) "
                   "WITH (FLUSH_POLICY='rows:6')")
    rng = random.Random(20240501)
    model = Model()
    kills = {"timer": 0, "during flush": 0}
    for trial in range(TRIALS):
        kill_on_flush = rng.randint(1, 3) if trial % 3 == 0 else 0
        how = run_child(path, rng.randrange(10**9), (trial + 1) * 1_000_000,
                        rng.uniform(0.02, 0.4), kill_on_flush, model)
        kills[how] += 1
        with kalam_engine.connect(path) as db:
            model.check(read_all(db))
    assert kills["during flush"] == TRIALS // 3
    assert len(model.rows) > 50  # the writers did real work
    with kalam_engine.connect(path) as db:  # still usable
        db.execute("INSERT INTO app.m (id, body) VALUES (1, 'after')", user="alice")
        db.execute("STORAGE FLUSH TABLE app.m")
        db.execute("STORAGE COMPACT TABLE app.m")
        model.rows[("alice", 1)] = "after"
        assert read_all(db) == model.rows
    with kalam_engine.connect(path) as db:
        assert read_all(db) == model.rows
        assert db._db.query("PRAGMA integrity_check") == [("ok",)]
