"""The app on uvicorn, for ``sdcpp serve`` (imported only once the server's stack is known to be there)."""

from __future__ import annotations

import copy
import signal
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

from .jobs import JobQueue

__all__ = ["run"]

# How long requests may take to end after Ctrl-C (their jobs are stopped at once) before uvicorn
# cancels them.
_GRACEFUL_SHUTDOWN_S = 5


class _StoppingServer(uvicorn.Server):
    """uvicorn's server, which stops the jobs first at Ctrl-C, so that their requests end now (with
    503) instead of holding the shutdown until they finish."""

    def __init__(self, config: uvicorn.Config, queue: JobQueue) -> None:
        super().__init__(config)
        self.queue = queue
        self.interrupted = False

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.interrupted = self.interrupted or sig == signal.SIGINT
        self.queue.stop("server stopping")
        super().handle_exit(sig, frame)


def run(app: FastAPI, sock: socket.socket) -> bool:
    """Serve ``app`` on the bound ``sock`` until Ctrl-C; False when uvicorn could not start.

    Raises KeyboardInterrupt after a Ctrl-C, once everything has stopped (uvicorn re-raises it).
    """
    log_config = copy.deepcopy(LOGGING_CONFIG)  # the job queue's lines look like uvicorn's
    log_config["loggers"]["sdcpp.server"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config = uvicorn.Config(app, log_config=log_config, timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S)
    server = _StoppingServer(config, app.state.sdcpp.queue)
    server.run(sockets=[sock])
    if server.interrupted:
        # uvicorn re-raises the Ctrl-C by raising SIGINT again, which does nothing in a process that
        # started with SIGINT ignored (a shell's background job): the exit status would say 0.
        raise KeyboardInterrupt
    return server.started
