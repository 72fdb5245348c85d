"""POST /v1/api/sql: run a batch as one user and shape the answer as KalamDB does.

Non-DML results come back in order, then the batch's INSERTs, UPDATEs and DELETEs merged into
at most three results. A failing statement stops the batch (statements before it stay
committed, as in KalamDB) and answers ``Statement N failed: ...``."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from kalam_engine.model.errors import KalamError, PermissionDeniedError
from kalam_engine.result import Result
from kalam_engine.server.encode import rows_as_arrays, schema_json
from kalam_engine.sql import statements as st
from kalam_engine.sql.limits import check_statement_shape
from kalam_engine.sql.names import validate_namespace
from kalam_engine.sql.params import bind_params, check_text
from kalam_engine.sql.parser import parse_statement
from kalam_engine.sql.tokens import split_statements

if TYPE_CHECKING:
    from kalam_engine.engine import Engine

log = logging.getLogger(__name__)
DEFAULT_NAMESPACE = "default"
MAX_PARAMS = 50
MAX_PARAM_BYTES = 512 * 1024
_DML = {st.InsertStatement: "Inserted", st.UpdateStatement: "Updated",
        st.DeleteStatement: "Deleted"}


class RequestError(Exception):
    """A request refused before any statement ran: KalamDB ``code``, HTTP 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_request(body: Any) -> tuple[str, list[Any] | None, str]:
    """(sql, params, namespace) of a request body, or RequestError."""
    if not isinstance(body, dict):
        raise RequestError("INVALID_INPUT", 'The body must be a JSON object like {"sql": "..."}')
    unknown = set(body) - {"sql", "params", "namespace_id"}
    if unknown:
        raise RequestError("INVALID_INPUT", f"Unknown field(s) {sorted(unknown)}; "
                                            "use sql, params and namespace_id")
    sql = body.get("sql")
    if not isinstance(sql, str):
        raise RequestError("INVALID_INPUT", 'The body needs "sql": a string of statements')
    if not sql.strip():
        raise RequestError("EMPTY_SQL", "The SQL is empty; give at least one statement")
    params = body.get("params")
    if params is not None:
        if not isinstance(params, list):
            raise RequestError("INVALID_PARAMETER", '"params" must be an array of values')
        if len(params) > MAX_PARAMS:
            raise RequestError("INVALID_PARAMETER",
                               f"{len(params)} params given; at most {MAX_PARAMS} are allowed")
        for i, value in enumerate(params, start=1):
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise RequestError("INVALID_PARAMETER",
                                   f"Parameter ${i} is an array or object; params may be "
                                   "null, booleans, numbers or strings")
            if isinstance(value, str) and len(value.encode("utf-8")) > MAX_PARAM_BYTES:
                raise RequestError("INVALID_PARAMETER",
                                   f"Parameter ${i} is larger than {MAX_PARAM_BYTES} bytes")
    namespace = body.get("namespace_id", "default")
    if not isinstance(namespace, str):
        raise RequestError("INVALID_INPUT", '"namespace_id" must be a string')
    try:
        namespace = DEFAULT_NAMESPACE if namespace.lower() == DEFAULT_NAMESPACE \
            else validate_namespace(namespace)
    except KalamError as exc:
        raise RequestError("INVALID_INPUT", exc.message) from None
    return sql, params, namespace


def run_batch(db: Engine, user: str, sql: str, params: list[Any] | None,
              namespace: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for a checked request run as ``user``."""
    started = time.perf_counter()

    def took() -> float:
        return round((time.perf_counter() - started) * 1000, 3)

    try:
        check_text(sql)
        statements = split_statements(sql)
    except KalamError as exc:
        return error_response(400, "BATCH_PARSE_ERROR", str(exc), took())
    if not statements:
        return error_response(400, "EMPTY_SQL", "The SQL holds no statement", took())
    if params and len(statements) > 1:
        return error_response(400, "PARAMS_WITH_BATCH",
                              "params can only be used with a single statement", took())
    results: list[dict[str, Any]] = []
    merged: dict[str, list[Any]] = {}  # verb -> [rows affected, as_user]
    for number, text in enumerate(statements, start=1):
        try:
            param_list = bind_params([text], params)
            check_statement_shape(text)
            stmt = parse_statement(text)
            ctx = db.context(user).with_namespace(namespace)
            result = db.run_statement(stmt, ctx, param_list)
        except KalamError as exc:
            status = 403 if isinstance(exc, PermissionDeniedError) \
                or exc.code == "PERMISSION_DENIED" else 400
            return error_response(status, exc.code, f"Statement {number} failed: {exc}",
                                  took())
        except RecursionError:
            return error_response(400, "INVALID_SQL",
                                  f"Statement {number} failed: nested too deeply", took())
        except Exception:  # a bug, not the user's doing: say so without internals
            log.exception("statement %d of a /v1/api/sql batch failed", number)
            return error_response(500, "INTERNAL_ERROR",
                                  f"Statement {number} failed: internal error (see the "
                                  "server log)", took())
        if isinstance(stmt, st.UseNamespace):
            namespace = stmt.name.lower()
        verb = _DML.get(type(stmt))
        if verb is not None:
            entry = merged.setdefault(verb, [0, result.as_user])
            entry[0] += result.row_count
        else:
            results.append(result_json(result))
        if result.subscription is not None:  # SUBSCRIBE TO over HTTP: nobody reads it
            result.subscription.close()
    for verb in ("Inserted", "Updated", "Deleted"):
        if verb in merged:
            count, as_user = merged[verb]
            results.append({"row_count": count, "message": f"{verb} {count} row(s)",
                            "as_user": as_user})
    return 200, {"status": "success", "results": results, "took": took()}


def result_json(result: Result) -> dict[str, Any]:
    out: dict[str, Any] = {}
    table = result.table
    if table is not None and table.num_columns:
        out["schema"] = schema_json(table.schema)
        out["rows"] = rows_as_arrays(table)
        out["row_count"] = table.num_rows
    else:
        out["row_count"] = result.row_count
    if result.message:
        out["message"] = result.message
    out["as_user"] = result.as_user
    return out


def error_response(status: int, code: str, message: str,
                   took: float = 0.0) -> tuple[int, dict[str, Any]]:
    return status, {"status": "error", "results": [], "took": took,
                    "error": {"code": code, "message": message, "details": None}}
