"""Request bodies into pydantic models, with every failure a 4xx naming the field.

JSON is parsed whatever the Content-Type says (``curl -d`` sends form encoding), and a body that
is not JSON at all, or nested too deeply for Python's parser, is refused as ``body``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from .errors import FieldError

__all__ = ["json_body", "read_json", "validate"]

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any) -> M:
    """``model`` from ``data``, or the RequestValidationError that FastAPI would raise."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_context=False, include_input=False, include_url=False)
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in errors]) from None


async def read_json(request: Request) -> Any:
    """The request's body parsed as JSON."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise FieldError("body", f"is not valid JSON ({type(e).__name__}: {e})"[:300]) from None


def json_body(model: type[M]) -> Callable[[Request], Any]:
    """A FastAPI dependency giving the request's JSON body as ``model``."""

    async def parse(request: Request) -> M:
        return validate(model, await read_json(request))

    return parse
