"""The JSON functions of KalamDB (datafusion-functions-json) as DataFusion UDFs, vectorised.

Each UDF takes the JSON text and one path in DuckDB's JSON path syntax (``$."a"[0]``, built by
:mod:`kalam_engine.sql.json_rewrite` from the variadic keys and indexes) and evaluates a whole
Arrow batch at once in DuckDB's JSON extension (a parser in C++). The SQL run in DuckDB is
fixed text in this module; the documents and paths are passed as Arrow columns or a bound
parameter, never spliced in. DuckDB runs in-memory on one thread per calling thread, with
external access (files, network, extensions) disabled.

Results follow datafusion-functions-json: NULL when the JSON is NULL or not valid JSON, when the
path does not exist, or (typed getters) when the value has another type; ``json_contains`` is
false for a missing path and true for a path holding ``null``. Where KalamDB returns a JSON
union from ``json_get`` / ``->``, the engine returns the value as text (a string without quotes,
a number or boolean as written, an array or object as compact JSON); cast it or use a typed
getter for numbers.
"""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionContext, udf

from kalam_engine.sql.json_rewrite import FUNCTIONS, PATH_ELEMENT_UDF

_NUMERIC = "('BIGINT', 'UBIGINT', 'HUGEINT', 'DOUBLE')"
# function -> (DuckDB expression over column j and path P, Arrow result type)
_EXPRESSIONS: dict[str, tuple[str, pa.DataType]] = {
    "json_get": ("TRY(json_extract_string(j, P))", pa.string()),
    "json_as_text": ("TRY(json_extract_string(j, P))", pa.string()),
    "json_get_str": ("TRY(CASE WHEN json_type(j, P) = 'VARCHAR' "
                     "THEN json_extract_string(j, P) END)", pa.string()),
    "json_get_int": ("TRY(CASE WHEN json_type(j, P) IN ('BIGINT', 'UBIGINT') "
                     "THEN TRY_CAST(json_extract_string(j, P) AS BIGINT) END)", pa.int64()),
    "json_get_float": (f"TRY(CASE WHEN json_type(j, P) IN {_NUMERIC} "
                       "THEN TRY_CAST(json_extract_string(j, P) AS DOUBLE) END)", pa.float64()),
    "json_get_bool": ("TRY(CASE WHEN json_type(j, P) = 'BOOLEAN' "
                      "THEN CAST(json_extract_string(j, P) AS BOOLEAN) END)", pa.bool_()),
    "json_contains": ("CASE WHEN j IS NULL OR P IS NULL THEN NULL "
                      "ELSE COALESCE(TRY(json_exists(j, P)), false) END", pa.bool_()),
    "json_length": ("TRY(CASE json_type(j, P) WHEN 'ARRAY' THEN json_array_length(j, P) "
                    "WHEN 'OBJECT' THEN len(json_keys(j, P)) END)", pa.uint64()),
    "json_object_keys": ("TRY(CASE WHEN json_type(j, P) = 'OBJECT' THEN json_keys(j, P) END)",
                         pa.list_(pa.string())),
}
assert set(_EXPRESSIONS) == set(FUNCTIONS)
_INTEGER_TYPES = "^U?Int(8|16|32|64)$"


class _DuckDB(threading.local):
    """One in-memory DuckDB connection per thread (created on first use)."""

    con: Any = None

    def connection(self) -> Any:
        if self.con is None:
            import duckdb  # imported on first use: most statements use no JSON function

            self.con = duckdb.connect(config={
                "threads": 1, "enable_external_access": False, "autoload_known_extensions": False,
                "autoinstall_known_extensions": False})
        return self.con


_DUCKDB = _DuckDB()


def _fetch(relation: Any) -> pa.Table:
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2.x / 1.x
    return fetch()


def _evaluate(name: str, docs: pa.Array, paths: pa.Array) -> pa.Array:
    expression, result_type = _EXPRESSIONS[name]
    n = len(docs)
    if n == 0:
        return pa.array([], result_type)
    if not pa.types.is_string(docs.type):
        docs = docs.cast(pa.string())
    paths = paths.cast(pa.string())
    first = paths[0]
    constant = first.is_valid and paths.null_count == 0 and \
        pc.all(pc.equal(paths, first)).as_py()
    if constant:
        table = pa.table({"j": docs})
        sql = f"SELECT {expression.replace('P', '$1')} AS r FROM batch"
        params = [first.as_py()]
    else:
        table = pa.table({"j": docs, "p": paths})
        sql = f"SELECT {expression.replace('P', 'p')} AS r FROM batch"
        params = []
    cursor = _DUCKDB.connection().cursor()
    try:
        cursor.register("batch", table)
        result = _fetch(cursor.sql(sql, params=params)).column(0).combine_chunks()
    finally:
        cursor.close()
    return result.cast(result_type)


def _json_udf(name: str) -> Any:
    def run(docs: pa.Array, paths: pa.Array) -> pa.Array:
        return _evaluate(name, docs, paths)

    return udf(run, [pa.string(), pa.string()], _EXPRESSIONS[name][1], "immutable",
               FUNCTIONS[name])


def _path_element(texts: pa.Array, types: pa.Array) -> pa.Array:
    """One path part per row: ``[i]`` for an integer (NULL when negative), ``."key"`` for
    anything else (NULL for the empty key, which DuckDB's paths cannot name); NULL stays
    NULL."""
    texts = texts.cast(pa.string())
    is_int = pc.match_substring_regex(types.cast(pa.string()), _INTEGER_TYPES)
    negative = pc.starts_with(texts, "-")
    index = pc.if_else(negative, pa.scalar(None, pa.string()),
                       pc.binary_join_element_wise("[", texts, "]", ""))
    escaped = pc.replace_substring(pc.replace_substring(texts, "\\", "\\\\"), '"', '\\"')
    key = pc.binary_join_element_wise('."', escaped, '"', "")
    key = pc.if_else(pc.equal(texts, ""), pa.scalar(None, pa.string()), key)  # no empty key
    return pc.if_else(is_int, index, key)


_UDFS = [_json_udf(name) for name in _EXPRESSIONS]
_UDFS.append(udf(_path_element, [pa.string(), pa.string()], pa.string(), "immutable",
                 PATH_ELEMENT_UDF))


def register_json_functions(session: SessionContext) -> None:
    """Register the JSON UDFs on ``session`` (they hold no state of any request)."""
    for fn in _UDFS:
        session.register_udf(fn)
