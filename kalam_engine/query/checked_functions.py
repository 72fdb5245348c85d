"""Checked replacements for DataFusion functions whose output size the caller chooses.

DataFusion's ``repeat(s, n)`` allocates ``len(s) * n`` bytes outside its memory pool; with
``n`` near 2**31 the allocation grows the process by gigabytes or aborts it. The replacement,
registered under the same name on every session, computes the output size first and charges it
to the statement's memory budget (``RequestState.budget``); a call may build at most 256 MiB.
An oversized call fails with a ResourceLimitError before anything is allocated. The result is
the same as DataFusion's (NULL in, NULL out; a count of zero or less gives '').
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionContext, udf

from kalam_engine.model.errors import KalamError, ResourceLimitError

if TYPE_CHECKING:
    from kalam_engine.query.session import RequestState

MAX_OUTPUT_BYTES = 256 << 20  # per call (one batch): far above any real use of repeat()


def _checked_repeat(request: Callable[[], RequestState]) -> Callable[..., pa.Array]:
    def repeat(strings: pa.Array, counts: pa.Array) -> pa.Array:
        counts = pc.max_element_wise(counts, 0)
        nbytes = pc.sum(pc.multiply(pc.binary_length(strings).cast(pa.int64()), counts))
        size = nbytes.as_py() or 0
        state = request()
        try:
            if size > MAX_OUTPUT_BYTES:
                raise ResourceLimitError(
                    f"repeat() would build {size} bytes of strings; the limit is "
                    f"{MAX_OUTPUT_BYTES >> 20} MiB per call", hint="repeat fewer times")
            state.budget.charge(size, "strings built by repeat()")
        except KalamError as exc:
            if state.error is None:
                state.error = exc
            raise
        return pc.binary_repeat(strings, counts)

    return repeat


def register_checked_functions(session: SessionContext,
                               request: Callable[[], RequestState]) -> None:
    """Replace DataFusion's size-amplifying functions on ``session``; ``request()`` is the
    request the session serves when the function runs."""
    session.register_udf(udf(_checked_repeat(request), [pa.string(), pa.int64()], pa.string(),
                             "immutable", "repeat"))
