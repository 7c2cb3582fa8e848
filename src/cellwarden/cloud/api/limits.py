"""Request bodies beyond a size are refused with 413 before they are read into memory."""

from __future__ import annotations

import json
import re

from starlette.exceptions import HTTPException

MAX_BODY_BYTES = 64 * 1024
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
# the routes allowed a larger body: (method, path pattern, limit)
LARGE_BODIES = (("POST", re.compile(r"/api/v1/orgs/[0-9]+/ota/bundles"), MAX_BUNDLE_BYTES),)


class BodyLimit:
    """ASGI middleware: 413 for a declared or streamed body over ``max_bytes``."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = next((size for method, path, size in LARGE_BODIES
                      if scope.get("method") == method and path.fullmatch(scope.get("path", ""))),
                     self.max_bytes)  # fmt: skip
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(send, limit)
            return
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLargeError(limit)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLargeError:
            await _too_large(send, limit)


class _TooLargeError(HTTPException):
    """Raised from ``receive`` when a streamed (chunked) body passes the limit. An HTTP
    exception, so that FastAPI, reading the body, passes it on as the 413 it is rather than
    answering 400 "error parsing the body"."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than {max_bytes} bytes")


async def _too_large(send, max_bytes: int) -> None:
    body = json.dumps({"detail": f"request body larger than {max_bytes} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
