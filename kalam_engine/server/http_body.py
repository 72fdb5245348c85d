"""Reading a request's JSON body within the size limit, and the error of a refused request."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

MAX_BODY_BYTES = 10 * 1024 * 1024


class RequestError(Exception):
    """A request refused before any statement ran: KalamDB ``code``, HTTP 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def json_body(request: Request) -> Any:
    """The parsed JSON body, or a RequestError (too large, not JSON)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError("INVALID_INPUT", f"The body is larger than {MAX_BODY_BYTES} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise RequestError("INVALID_INPUT",
                               f"The body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(bytes(data))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError("INVALID_INPUT", f"The body is not valid JSON: {exc}") from None
