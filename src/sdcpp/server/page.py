"""The web page at ``/``: static HTML, CSS and JavaScript shipped in the package, nothing fetched
from elsewhere (the Content-Security-Policy forbids it), talking to the A1111 routes."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from starlette.responses import Response

__all__ = ["router"]

router = APIRouter()

_FILES = {"/": ("index.html", "text/html"), "/page.js": ("page.js", "text/javascript"),
          "/page.css": ("page.css", "text/css")}
_POLICY = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


def _route(path: str, name: str, media_type: str) -> None:
    content = (files(__package__) / "page" / name).read_bytes()

    async def serve() -> Response:
        return Response(content, media_type=f"{media_type}; charset=utf-8",
                        headers={"Content-Security-Policy": _POLICY, "Cache-Control": "no-cache"})

    router.add_api_route(path, serve, methods=["GET"], include_in_schema=False, name=name)


for _path, (_name, _type) in _FILES.items():
    _route(_path, _name, _type)
