"""DATETIME (Timestamp µs, UTC) accepts a timestamp text without a zone as UTC, as KalamDB
does, on every write path: the literal VALUES fast path, $n parameters, DataFusion-evaluated
sources and UPDATE SET."""

from __future__ import annotations

import datetime as dt

import pytest

from kalam_engine.model.errors import InvalidParameterError

UTC = dt.UTC


@pytest.fixture
def events(db):
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE SHARED TABLE app.ev (id INT PRIMARY KEY, at DATETIME)")
    return db


def at(db, pk):
    value = db.execute("SELECT at FROM app.ev WHERE id = $1", params=[pk]).to_arrow()
    return value.column(0).to_pylist()[0].astimezone(UTC).replace(tzinfo=UTC)


TEN = dt.datetime(2023, 1, 1, 10, 0, tzinfo=UTC)


def test_values_fast_path_reads_text_without_zone_as_utc(events):
    events.execute("INSERT INTO app.ev VALUES (1, '2023-01-01 10:00:00'), "
                   "(2, '2023-01-01T10:00:00'), (3, '2023-01-01 12:00:00+02:00'), "
                   "(4, '2023-01-01T10:00:00Z'), (5, '2023-01-01'), "
                   "(6, '2023-01-01 10:00:00.25')")
    assert [at(events, i) for i in range(1, 5)] == [TEN] * 4
    assert at(events, 5) == dt.datetime(2023, 1, 1, tzinfo=UTC)
    assert at(events, 6) == TEN.replace(microsecond=250_000)


def test_parameter_datafusion_path_and_update(events):
    events.execute("INSERT INTO app.ev VALUES (1, $1)", params=["2023-01-01 10:00:00"])
    events.execute("INSERT INTO app.ev SELECT 2, '2023-01-01 10:00:00'")
    events.execute("INSERT INTO app.ev VALUES (3, concat('2023-01-01', ' 10:00:00'))")
    events.execute("UPDATE app.ev SET at = '2024-06-01 08:30:00' WHERE id = 3")
    assert [at(events, i) for i in (1, 2)] == [TEN, TEN]
    assert at(events, 3) == dt.datetime(2024, 6, 1, 8, 30, tzinfo=UTC)
    assert events.execute("SELECT id FROM app.ev WHERE at = '2023-01-01 10:00:00' "
                          "ORDER BY id").to_arrow().column(0).to_pylist() == [1, 2]


def test_bad_text_is_rejected_and_nothing_written(events):
    with pytest.raises(InvalidParameterError, match="'at'"):
        events.execute("INSERT INTO app.ev VALUES (1, '2023-01-01 10:00:00'), "
                       "(2, '2023-13-01 10:00:00')")
    assert events.execute("SELECT count(*) FROM app.ev").to_arrow().column(0).to_pylist() == [0]
