from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

import kalam_engine


@pytest.fixture
def db():
    engine = kalam_engine.connect(":memory:")
    yield engine
    engine.close()


@pytest.fixture
def disk_db(tmp_path):
    engine = kalam_engine.connect(tmp_path / "data")
    yield engine
    engine.close()


@pytest.fixture
def chat(db):
    """A namespace with a USER table and a SHARED table."""
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.messages (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), "
               "body TEXT NOT NULL, score INT DEFAULT 0)")
    db.execute("CREATE SHARED TABLE app.rooms (id INT PRIMARY KEY, name TEXT) "
               "WITH (ACCESS_LEVEL='PUBLIC')")
    return db


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    """A real IPython shell with the extension loaded (shared by the notebook-layer tests)."""
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "kalam_jupyter")
    yield ip
    ip.run_line_magic("unload_ext", "kalam_jupyter")
