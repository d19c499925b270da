"""The ASGI application: both APIs and the web page over one Generator and its job queue."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Optional

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..generator import Generator
from . import a1111, openai, page
from .errors import install_handlers
from .generation import Server
from .jobs import JobQueue
from .limits import Limits
from .middleware import ApiKey, BodyLimit

__all__ = ["create_app"]


def create_app(generator: Generator, *, api_key: Optional[str] = None, limits: Optional[Limits] = None) -> FastAPI:
    """The server's application for ``generator`` (which the caller keeps and closes).

    Args:
        generator: the loaded model; its jobs run one at a time on a worker thread.
        api_key: when set, every route answers 401 without it (see :mod:`sdcpp.server.middleware`).
        limits: per-request limits (default :class:`Limits()`).
    """
    limits = limits or Limits()
    queue = JobQueue(generator, limits.max_queued)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(queue.close)  # stops the running job at its next step

    # No /docs or /redoc: their pages load scripts from a CDN. /openapi.json stays.
    app = FastAPI(title="sdcpp", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.sdcpp = Server(generator, queue, limits)
    install_handlers(app)
    app.include_router(a1111.router)
    app.include_router(openai.router)
    app.include_router(page.router)
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    if api_key:
        app.add_middleware(ApiKey, key=api_key)  # added last, so outermost: checked before any body is read
    return app
