"""system.settings, system.server_logs, system.datatypes, system.job_nodes and KalamDB's
metric names in system.stats (issue 13, item 6). Who may read them: test_permission_matrix."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import kalam_engine
from kalam_engine.model.types import resolve_type


def table(db: kalam_engine.Engine, name: str) -> pa.Table:
    return db.execute(f"SELECT * FROM system.{name}").to_arrow()


def test_settings_show_the_engines_options(tmp_path: Path) -> None:
    db = kalam_engine.connect(tmp_path / "data", durability="normal", statement_timeout=None,
                              fast_paths=False, cache_capacity=7, memory_limit=1 << 30)
    try:
        rows = table(db, "settings").to_pylist()
        settings = {r["name"]: r["value"] for r in rows}
        assert settings["durability"] == "normal"
        assert settings["statement_timeout"] == "none"
        assert settings["fast_paths"] == "false"
        assert settings["cache_capacity"] == "7"
        assert settings["memory_limit"] == str(1 << 30)
        assert settings["read_only"] == "false"
        assert settings["version"]
        assert all(r["description"] and r["category"] for r in rows)
        db.statement_timeout = 5
        assert {r["name"]: r["value"] for r in table(db, "settings").to_pylist()}[
            "statement_timeout"] == "5"
    finally:
        db.close()
    reader = kalam_engine.connect(tmp_path / "data", read_only=True)
    try:
        assert {r["name"]: r["value"] for r in table(reader, "settings").to_pylist()}[
            "read_only"] == "true"
    finally:
        reader.close()


def test_server_logs_has_kalamdbs_columns(db: kalam_engine.Engine) -> None:
    logs = table(db, "server_logs")
    assert logs.column_names == ["timestamp", "level", "thread", "target", "line", "message"]
    assert logs.num_rows == 0  # an embedded engine has no server log


def test_datatypes_match_the_type_mapping(db: kalam_engine.Engine) -> None:
    rows = table(db, "datatypes").to_pylist()
    assert table(db, "datatypes").column_names == ["arrow_type", "kalam_type", "sql_name",
                                                  "description"]
    by_name = {r["sql_name"]: r for r in rows}
    assert by_name["BIGINT"]["arrow_type"] == "Int64"
    assert by_name["TEXT"]["arrow_type"] == "Utf8"
    assert by_name["DATETIME"]["kalam_type"] == "DateTime"
    assert {"DECIMAL(p,s)", "EMBEDDING(n)", "UUID", "JSON", "FILE"} <= set(by_name)
    db.execute("CREATE NAMESPACE app")
    for name, row in by_name.items():
        if "(" in name:
            continue
        assert resolve_type(name)[0] == row["kalam_type"]
        # every listed name is accepted by CREATE TABLE (INT2/INT4/INT8/FLOAT4/FLOAT8 were not)
        column = "c" + str(len(name))
        db.execute(f"CREATE SHARED TABLE IF NOT EXISTS app.t_{abs(hash(name)) % 10**8} "
                   f"(id INT PRIMARY KEY, {column} {name})")


def test_int8_and_float8_columns_can_be_created(db: kalam_engine.Engine) -> None:
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE SHARED TABLE app.t (id INT8 PRIMARY KEY, a INT2, b INT4, c FLOAT4, "
               "d FLOAT8)")
    db.execute("INSERT INTO app.t (id, a, b, c, d) VALUES (1, 2, 3, 4.5, 6.5)")
    got = db.execute("SELECT * FROM app.t").to_arrow()
    assert got.schema.field("id").type == pa.int64()
    assert got.schema.field("a").type == pa.int16()
    assert got.schema.field("d").type == pa.float64()


def test_job_nodes_has_one_local_row_per_job(tmp_path: Path) -> None:
    db = kalam_engine.connect(tmp_path / "data")
    try:
        db.execute("CREATE NAMESPACE app")
        db.execute("CREATE SHARED TABLE app.t (id INT PRIMARY KEY)")
        db.execute("INSERT INTO app.t (id) VALUES (1)")
        db.execute("STORAGE FLUSH TABLE app.t")
        db.execute("STORAGE FLUSH TABLE app.t")  # skipped: nothing pending
        nodes = table(db, "job_nodes")
        assert nodes.column_names == ["job_id", "node_id", "status", "error_message",
                                      "created_at", "started_at", "finished_at", "updated_at"]
        jobs = table(db, "jobs")
        assert sorted(nodes["job_id"].to_pylist()) == sorted(jobs["job_id"].to_pylist())
        assert set(nodes["node_id"].to_pylist()) == {1}
        assert sorted(nodes["status"].to_pylist()) == ["completed", "skipped"]
    finally:
        db.close()


def test_stats_have_kalamdbs_metric_names(db: kalam_engine.Engine) -> None:
    db.execute("CREATE USER alice WITH PASSWORD 'password1' ROLE user")
    db.execute("CREATE USER bob WITH PASSWORD 'password1' ROLE user")
    db.execute("DROP USER bob")
    stats = {r["metric_name"]: r["metric_value"] for r in table(db, "stats").to_pylist()}
    assert stats["total_users"] == "2"  # root and alice (bob is deleted)
    assert stats["server_version"]
    assert int(stats["schema_cache_size"]) == int(stats["schema_cache_entries"])
    assert int(stats["schema_registry_size"]) >= 12  # the system tables at least
    assert "providers_built" in stats  # ours stay beside them


@pytest.mark.parametrize("name", ["settings", "server_logs", "datatypes", "job_nodes"])
def test_new_system_tables_are_read_only(db: kalam_engine.Engine, name: str) -> None:
    with pytest.raises(kalam_engine.PermissionDeniedError):
        db.execute(f"DELETE FROM system.{name} WHERE true")
    with pytest.raises(kalam_engine.PermissionDeniedError):
        db.execute(f"DROP TABLE system.{name}")
