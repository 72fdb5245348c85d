"""ALTER TABLE ADD COLUMN ... NOT NULL DEFAULT on a table with rows, killed with SIGKILL at fixed
points: the backfill and the catalog change commit together, so the reopened table is the old
one (and a later column starts empty) or the new one (every row has the default), never
backfilled values without their column."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

import kalam_engine

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

USERS = ("alice", "bob")
# The child kills itself at ``point``: when the catalog change starts ("save"), right after it
# ("saved", the commit is still ahead) or when the cache registers the new version ("register",
# after the commit).
CHILD = r"""
import os, signal, sys
import kalam_engine
from kalam_engine.catalog.cache import SchemaCache
from kalam_engine.catalog.store import CatalogStore

path, point = sys.argv[1], sys.argv[2]
db = kalam_engine.connect(path)

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

save = CatalogStore.save_table
if point == "save":
    CatalogStore.save_table = die
elif point == "saved":
    def save_then_die(self, definition):
        save(self, definition)
        die()
    CatalogStore.save_table = save_then_die
else:
    SchemaCache.register = die
db.execute("ALTER TABLE app.t ADD COLUMN flag TEXT NOT NULL DEFAULT 'x'")
print("NOT KILLED")
"""


def make_table(path: Path) -> None:
    with kalam_engine.connect(path) as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, body TEXT)")
        for user in USERS:
            db.execute("INSERT INTO app.t VALUES (1, 'a'), (2, 'b')", user=user)
        db.execute("STORAGE FLUSH TABLE app.t")  # cold rows
        for user in USERS:
            db.execute("INSERT INTO app.t VALUES (3, 'c')", user=user)  # hot rows


def rows(db: kalam_engine.Engine, user: str) -> list[dict]:
    out = db.execute("SELECT * FROM app.t ORDER BY id", user=user).to_arrow()
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in out.to_pylist()]


def check_all_or_nothing(path: Path) -> str:
    """'old' or 'new'; fails on any mix."""
    with kalam_engine.connect(path) as db:
        columns = [c.name for c in db.catalog.load_table(
            kalam_engine.model.context.TableId("app", "t")).columns]
        if "flag" in columns:
            for user in USERS:
                assert rows(db, user) == [{"id": i, "body": b, "flag": "x"}
                                          for i, b in ((1, "a"), (2, "b"), (3, "c"))]
            return "new"
        assert columns == ["id", "body"]
        db.execute("ALTER TABLE app.t ADD COLUMN later TEXT")
        db.execute("STORAGE FLUSH TABLE app.t")
    with kalam_engine.connect(path) as db:
        for user in USERS:
            assert rows(db, user) == [{"id": i, "body": b, "later": None}
                                      for i, b in ((1, "a"), (2, "b"), (3, "c"))], \
                "backfilled values of a rolled-back ADD COLUMN reappeared in a later column"
    return "old"


@pytest.mark.parametrize(("point", "expected"),
                         [("save", "old"), ("saved", "old"), ("register", "new")])
def test_add_column_killed_is_all_or_nothing(tmp_path: Path, point: str, expected: str) -> None:
    path = tmp_path / "data"
    make_table(path)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), point],
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert check_all_or_nothing(path) == expected
