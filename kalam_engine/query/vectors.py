"""KalamDB's vector function ``COSINE_DISTANCE(a, b)`` for DataFusion, vectorised with numpy.

``a`` and ``b`` are EMBEDDING(n) columns (FixedSizeList<Float32, n>), float arrays, or vector
literals written as strings (``'[1.0, 0.0, 0.0]'``) or bound as ``$n`` parameters (a str, or a
list of numbers). DataFusion's Python UDFs take one exact signature, so the string forms are
wrapped by :mod:`kalam_engine.query.vector_text` in ``kalam_vector(..)`` (string -> float list),
which DataFusion folds to a constant once per statement.

Semantics: ``1 - a.b / (|a| |b|)`` as DOUBLE; NULL when either side is NULL or has no length
(a zero vector); two vectors of different dimensions are an InvalidParameterError.
The rows are computed batch by batch on the Arrow values buffer (no Python loop per row).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionContext, udf

from kalam_engine.model.errors import InvalidParameterError, KalamError

if TYPE_CHECKING:
    from kalam_engine.query.session import RequestState

VECTOR_TYPE = pa.list_(pa.float32())
MAX_DIMENSION = 8192  # as EMBEDDING(n)


def parse_vector(text: str) -> list[float]:
    """``'[1.0, 2, -3e-1]'`` -> floats; raise InvalidParameterError for anything else."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise InvalidParameterError(
            f"Not a vector literal: {text[:60]!r}", hint="write a vector as '[1.0, 0.0, 0.0]'")
    parts = body[1:-1].split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InvalidParameterError(
            f"Not a vector literal: {text[:60]!r}",
            hint="write a vector as '[1.0, 0.0, 0.0]' (numbers separated by commas)") from None
    if not 1 <= len(values) <= MAX_DIMENSION:
        raise InvalidParameterError(
            f"A vector has 1 to {MAX_DIMENSION} values; this one has {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise InvalidParameterError(f"Vector {text[:60]!r} holds a value that is not finite",
                                    hint="use finite numbers only")
    return values


def _vector_array(strings: pa.Array) -> pa.Array:
    """kalam_vector: each string parsed as a vector (NULL stays NULL). DataFusion folds a
    call on a literal to a constant, so this runs once per statement for a literal."""
    out: list[list[float] | None] = []
    cache: dict[str, list[float]] = {}
    for value in strings.to_pylist():
        if value is None:
            out.append(None)
            continue
        parsed = cache.get(value)
        if parsed is None:
            parsed = cache[value] = parse_vector(value)
        out.append(parsed)
    return pa.array(out, VECTOR_TYPE)


def _as_matrix(vectors: pa.Array, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The vectors at positions ``rows`` as one float32 matrix, and their lengths. All of them
    must have the same dimension (checked by the caller through ``_dimensions``)."""
    picked = vectors.take(pa.array(rows, pa.int64())) if len(rows) != len(vectors) else vectors
    flat = pc.list_flatten(picked).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    matrix = flat.reshape(len(rows), -1) if len(rows) else flat.reshape(0, 0)
    return matrix, np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64))


def _dimensions(vectors: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.list_value_length(vectors), 0).to_numpy(zero_copy_only=False)


def cosine_distances(a: pa.Array, b: pa.Array) -> pa.Array:
    """Row-wise cosine distance of two float-list arrays (the UDF's body)."""
    n = len(a)
    valid = np.asarray(pc.and_(pc.is_valid(a), pc.is_valid(b)).to_numpy(zero_copy_only=False),
                       dtype=bool)
    rows = np.flatnonzero(valid)
    result = np.full(n, np.nan)
    if len(rows):
        da, db = _dimensions(a)[rows], _dimensions(b)[rows]
        mismatch = np.flatnonzero((da != db) | (da != da[0]))
        if len(mismatch):
            i = mismatch[0]
            raise InvalidParameterError(
                f"COSINE_DISTANCE compares vectors of the same dimension; got {da[i]} and "
                f"{db[i]} values", hint="compare an EMBEDDING(n) column with a vector of n "
                                         "values")
        ma, na = _as_matrix(a, rows)
        mb, nb = _as_matrix(b, rows)
        dots = np.einsum("ij,ij->i", ma, mb, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            result[rows] = 1.0 - dots / (na * nb)
    out = pa.array(result, pa.float64(), from_pandas=True)  # NaN (null or zero vector) -> NULL
    return out


def _reporting(fn: Callable[..., pa.Array],
               request: Callable[[], RequestState]) -> Callable[..., pa.Array]:
    """``fn`` with its KalamError kept as the request's error (DataFusion re-raises a UDF's
    exception as its own text; the runner reports the request's first error instead)."""
    def call(*args: pa.Array) -> pa.Array:
        try:
            return fn(*args)
        except KalamError as exc:
            state = request()
            if state.error is None:
                state.error = exc
            raise
    return call


def register_vector_functions(session: SessionContext,
                              request: Callable[[], RequestState]) -> None:
    """Register ``cosine_distance`` (replacing DataFusion's, which refuses string vectors) and
    ``kalam_vector`` on ``session``; ``request()`` is the request the session serves."""
    session.register_udf(udf(_reporting(cosine_distances, request), [VECTOR_TYPE, VECTOR_TYPE],
                             pa.float64(), "immutable", "cosine_distance"))
    session.register_udf(udf(_reporting(_vector_array, request), [pa.string()], VECTOR_TYPE,
                             "immutable", "kalam_vector"))
