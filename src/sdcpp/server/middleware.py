"""The two guards in front of every route: the API key, and the limit on the body's size.

``--api-key``: every route, the web page included, needs the key.

Accepted as ``Authorization: Bearer KEY`` (OpenAI's clients) or HTTP basic auth (A1111's
``--api-auth`` clients, and browsers: the page's 401 makes the browser ask, and any user name
with the key as password, or ``user:password`` equal to the whole key, passes).
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

__all__ = ["ApiKey", "BodyLimit"]


class ApiKey:
    """ASGI middleware answering 401 to any request without the key."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._allowed(dict(scope["headers"]).get(b"authorization", b"")):
            await self.app(scope, receive, send)
            return
        response = error_response(
            scope["path"], 401, "Authorization",
            "this server needs its API key: send 'Authorization: Bearer KEY' (or basic auth with KEY as password)",
            code="invalid_api_key",
        )
        response.headers["WWW-Authenticate"] = 'Basic realm="sdcpp", charset="UTF-8"'
        await response(scope, receive, send)

    def _allowed(self, header: bytes) -> bool:
        scheme, _, value = header.partition(b" ")
        value = value.strip()
        if scheme.lower() == b"bearer":
            return hmac.compare_digest(value, self.key)
        if scheme.lower() == b"basic":
            try:
                credentials = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            password = credentials.partition(b":")[2]
            # Both comparisons always run, so the time taken does not tell which one failed.
            whole = hmac.compare_digest(credentials, self.key)
            return hmac.compare_digest(password, self.key) | whole
        return False


class BodyLimit:
    """ASGI middleware: refuse a body over ``limit`` bytes with 413, from its Content-Length when
    it has one, else as soon as the streamed body passes the limit (nothing larger is kept)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0").decode("latin-1")
        if not length.isdigit():
            response = error_response(scope["path"], 400, "body", f"Content-Length {length!r} is not a number")
        elif int(length) > self.limit:
            response = error_response(scope["path"], 413, "body", self._too_large(f"{length} bytes"))
        else:
            response = None
        if response is not None:
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                # FastAPI re-raises an HTTPException met while reading the body; errors.py renders it.
                raise HTTPException(413, self._too_large("the body"))
            return message

        await self.app(scope, counting_receive, send)

    def _too_large(self, size: str) -> str:
        return f"{size} is over this server's limit of {self.limit} bytes (sdcpp serve --max-body-mb)"
