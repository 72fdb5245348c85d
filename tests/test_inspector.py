"""The inspector's widget state matches the engine's own figures as cells run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import kalam_engine
from kalam_jupyter import Inspector
from kalam_jupyter.inspector import FIGURES, collect, refresh_all
from kalam_jupyter.magics import KalamMagics


@pytest.fixture
def magics(shell: InteractiveShell) -> Iterator[KalamMagics]:
    m: KalamMagics = shell.magics_manager.registry["KalamMagics"]
    m.connect(":memory:")
    yield m
    for inspector in m.inspectors:
        inspector.close()
    m.inspectors.clear()
    m.close()


def run(shell: InteractiveShell, code: str) -> Any:
    with capture_output() as cap:
        result = shell.run_cell(code, store_history=False)
    assert result.error_in_exec is None and result.error_before_exec is None, cap.stderr
    return cap


def assert_matches_engine(inspector: Inspector, db: Any) -> None:
    stats = db.cache.stats()
    f = inspector.figures
    assert f["live_providers"] == stats.live_providers
    assert f["providers_built"] == stats.built
    assert f["cache_entries"] == stats.entries
    assert f["cache_capacity"] == stats.capacity
    assert f["cache_hits"] == stats.hits
    assert f["cache_misses"] == stats.misses
    assert f["cache_evictions"] == stats.evictions
    assert f["cache_revived"] == stats.revived
    assert f["cache_memory_bytes"] == stats.memory_bytes
    tables = db.table_stats()
    assert f["tables"] == len(tables)
    assert f["users"] == db.user_count()
    assert f["per_user_design"] == db.user_count() * len(tables)
    assert f["hot_rows"] == sum(t["hot_rows"] for t in tables)
    texts = inspector.figure_texts()
    assert texts["live_providers"] == f"Live providers: {stats.live_providers}"
    assert texts["providers_built"] == f"Providers built: {stats.built}"


def test_inspector_follows_cells(shell: InteractiveShell, magics: KalamMagics) -> None:
    run(shell, "%kalam CREATE NAMESPACE app")
    cap = run(shell, "%kalam inspect")
    assert "Live providers:" in cap.stdout + "".join(
        o.data.get("text/plain", "") for o in cap.outputs
    )
    inspector = magics.inspectors[-1]
    db = magics.engine()
    assert_matches_engine(inspector, db)
    before = inspector.figures["tables"]
    run(
        shell,
        "%%kalam\n"
        + "\n".join(
            f"CREATE USER TABLE app.t{i} (id BIGINT PRIMARY KEY, v TEXT);" for i in range(5)
        ),
    )
    # refreshed by the post_run_cell event, not by us
    assert inspector.figures["tables"] == before + 5
    assert_matches_engine(inspector, db)
    for user in ("alice", "bob", "carol"):
        run(shell, f"%kalam --user {user} INSERT INTO app.t0 (id, v) VALUES (1, 'x')")
        run(shell, f"%kalam --user {user} SELECT * FROM app.t1")
    assert inspector.figures["users"] >= 3
    assert inspector.figures["hot_rows"] >= 3
    assert_matches_engine(inspector, db)
    per_table = {t["table"]: t for t in inspector.figures["per_table"]}
    assert per_table["app.t0"]["hot_rows"] == 3
    assert "app.t0" in inspector._tables.value


def test_widget_has_stable_class_and_every_figure(magics: KalamMagics) -> None:
    db = magics.engine()
    db.execute("CREATE NAMESPACE ns")
    db.execute("CREATE SHARED TABLE ns.s (id BIGINT PRIMARY KEY, v TEXT)")
    inspector = Inspector(db)
    try:
        assert "kalam-inspector" in inspector.widget._dom_classes
        texts = inspector.figure_texts()
        assert set(texts) == {k for k, _, _ in FIGURES}
        assert texts["tables"].startswith("Tables: ")
        assert "users x" in texts["per_user_design"]
        db.execute("CREATE SHARED TABLE ns.s2 (id BIGINT PRIMARY KEY, v TEXT)")
        from kalam_jupyter.inspector import _remember

        _remember(inspector)
        refresh_all()
        assert_matches_engine(inspector, db)
    finally:
        inspector.close()


def test_text_fallback_and_collect() -> None:
    with kalam_engine.connect(":memory:") as db:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE USER TABLE app.m (id BIGINT PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO app.m (id, body) VALUES (1, 'a')", user="u1")
        figures = collect(db)
        text = Inspector(db).text()
        assert f"Live providers: {figures['live_providers']}" in text
        assert "app.m" in text
        bundle = Inspector(db)._repr_mimebundle_()
        assert bundle["text/plain"].startswith("Kalam inspector")


def test_closed_engine_does_not_break_refresh() -> None:
    db = kalam_engine.connect(":memory:")
    inspector = Inspector(db)
    db.close()
    inspector.refresh()
    assert inspector.error is not None
    assert "Kalam inspector" in inspector.text()


def test_side_panel_falls_back_to_text_outside_a_notebook(
    shell: InteractiveShell, magics: KalamMagics
) -> None:
    cap = run(shell, "%kalam inspect --side")
    shown = cap.stdout + "".join(o.data.get("text/plain", "") for o in cap.outputs)
    assert "Live providers:" in shown
