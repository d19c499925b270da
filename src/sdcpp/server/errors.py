"""Every refusal is a JSON error that names the field at fault, in the dialect of the API asked.

A1111's routes answer as FastAPI does (A1111 is FastAPI): status 422 for a bad value, with the
error as ``detail``; sdcpp adds ``field`` and a one-line ``error``. OpenAI's routes answer as
OpenAI does: status 400 and ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from ..errors import InvalidArgumentError

__all__ = ["FieldError", "error_response", "field_error", "install_handlers"]

log = logging.getLogger("sdcpp.server")


class FieldError(Exception):
    """A request field has a value the server refuses; ``status`` defaults to the API's own."""

    def __init__(self, field: Optional[str], message: str, status: Optional[int] = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.status = status


def is_openai(path: str) -> bool:
    return path.startswith("/v1/")


def error_response(
    path: str, status: Optional[int], field: Optional[str], message: str, detail: Any = None, code: Optional[str] = None
) -> JSONResponse:
    """The JSON error for a request to ``path``; ``status`` None is the API's status for a bad value."""
    summary = f"{field}: {message}" if field else message
    if is_openai(path):
        body: dict[str, Any] = {
            "error": {"message": summary, "type": "invalid_request_error", "param": field, "code": code}
        }
        return JSONResponse(body, status_code=status or 400)
    return JSONResponse(
        {"error": summary, "field": field, "detail": message if detail is None else detail},
        status_code=status or 422,
    )


def field_error(error: InvalidArgumentError, fields: Mapping[str, str]) -> FieldError:
    """An sdcpp argument error ("steps: must be ...") as the error of the request field it came from.

    ``fields`` maps sdcpp's argument names to the API's (``batch`` -> ``batch_size``).
    """
    argument, sep, message = str(error).partition(": ")
    argument = argument.split(",")[0]  # "width, height: ..." names both; report the first
    if not sep:
        return FieldError(None, str(error))
    return FieldError(fields.get(argument, argument), message)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(FieldError)
    async def _field(request: Request, exc: FieldError) -> JSONResponse:
        return error_response(request.url.path, exc.status, exc.field, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        names = [str(part) for part in first["loc"] if part != "body" and not isinstance(part, int)]
        field = ".".join(names) or "body"
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
        return error_response(request.url.path, None, field, first["msg"], detail=detail)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        field = "body" if exc.status_code in (400, 413) else None
        response = error_response(request.url.path, exc.status_code, field, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(request.url.path, 500, None, f"internal error: {type(exc).__name__}: {exc}")
