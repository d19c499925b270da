"""The job queue: one worker thread per loaded model runs the requests in the order they came.

The event loop only submits jobs and waits on their futures, so progress and interrupt answer
while a job runs (the engine releases the GIL). A job stops early when it is cancelled: a queued
job is dropped; a running one is stopped at its next sampling step, both through
:meth:`Generator.cancel` and by its own progress callback (which also catches a cancel that came
just before the engine started, when ``Generator.cancel`` alone would be forgotten).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from PIL import Image
from starlette.requests import Request

from ..errors import Cancelled
from ..generator import Generator

__all__ = ["Job", "JobCancelled", "JobQueue", "QueueFull"]

log = logging.getLogger("sdcpp.server")

#: How often a waiting request checks whether its client is still there.
_DISCONNECT_POLL_S = 0.2


class JobCancelled(Exception):
    """The job was dropped or stopped; ``reason`` says by whom, ``partial`` what it had finished."""

    def __init__(self, reason: str, partial: Sequence[Any] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = list(partial)


class QueueFull(Exception):
    pass


class ClientGone(Exception):
    """The client disconnected while its job waited or ran; the job was cancelled."""


@dataclass(eq=False)
class Job:
    """One request's work, ``work(job)``, run on the worker thread, and its progress."""

    id: int
    label: str
    work: Callable[[Job], Any]
    iterations: int = 1
    future: Future = field(default_factory=Future)
    state: str = "queued"  # queued, running, finished
    started: float = 0.0
    iteration: int = 0
    step: int = 0
    steps: int = 0
    seconds_per_step: float = 0.0
    #: Set once the job is asked to stop; the progress callback raises it at the next step.
    cancel_reason: Optional[str] = None
    #: What ``work`` finished before it was stopped (A1111 returns it on interrupt).
    partial: list = field(default_factory=list)
    #: The latest preview of the image being sampled (``/sdapi/v1/progress``'s ``current_image``).
    preview_image: Optional[Image.Image] = None

    def progress(self, step: int, steps: int, seconds_per_step: float) -> None:
        """The engine's progress callback (``Generator.generate(progress=...)``)."""
        self.step, self.steps = step, steps
        if seconds_per_step > 0:
            self.seconds_per_step = seconds_per_step
        self.check()

    def preview(self, step: int, image: Image.Image) -> None:
        """The engine's preview callback (``Generator.generate(preview=...)``)."""
        self.preview_image = image

    def check(self) -> None:
        """Raise JobCancelled if the job was asked to stop (for work between engine calls)."""
        if self.cancel_reason is not None:
            raise JobCancelled(self.cancel_reason)

    def fraction(self) -> float:
        """How much of the job is done, 0 to 1 (sampling steps over all iterations)."""
        within = self.step / self.steps if self.steps else 0.0
        return min(1.0, (self.iteration + within) / self.iterations)

    def eta(self) -> float:
        """Seconds of sampling left, estimated from the last step's time (0 until one ran)."""
        left = (self.iterations - self.iteration) * self.steps - self.step
        return max(0, left) * self.seconds_per_step


class JobQueue:
    """Runs submitted jobs one at a time, in order, on a worker thread that owns ``generator``."""

    def __init__(self, generator: Generator, max_queued: int) -> None:
        self.generator = generator
        self.max_queued = max_queued
        self.current: Optional[Job] = None
        self._waiting: deque[Job] = deque()
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="sdcpp-jobs", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def submit(self, label: str, work: Callable[[Job], Any], iterations: int = 1) -> Job:
        with self._lock:
            if self._closed:
                raise QueueFull("the server is shutting down")
            if len(self._waiting) >= self.max_queued:
                raise QueueFull(f"{len(self._waiting)} requests are already waiting; try again later")
            job = Job(next(self._ids), label, work, iterations)
            self._waiting.append(job)
            self._lock.notify()
        log.info("job %d queued: %s (%d waiting)", job.id, label, len(self._waiting))
        return job

    def cancel(self, job: Job, reason: str) -> None:
        """Drop ``job`` if it waits, or stop it at its next step if it runs."""
        with self._lock:
            if job in self._waiting:
                self._waiting.remove(job)
                job.state = "finished"
                job.future.cancel()
                log.info("job %d dropped from the queue: %s", job.id, reason)
                return
            if job is not self.current or job.cancel_reason is not None:
                return
            job.cancel_reason = reason
        log.info("job %d stopping: %s", job.id, reason)
        self.generator.cancel()

    def interrupt(self) -> Optional[Job]:
        """Stop the running job (A1111's interrupt: the queued ones stay)."""
        job = self.current
        if job is not None:
            self.cancel(job, "interrupted")
        return job

    async def run(self, request: Request, label: str, work: Callable[[Job], Any], iterations: int = 1) -> Any:
        """Queue ``work`` for ``request`` and wait for its result without blocking the event loop.

        Raises ClientGone (the job cancelled) when the client disconnects meanwhile, and
        JobCancelled when someone else stopped the job.
        """
        job = self.submit(label, work, iterations)
        waiter = asyncio.wrap_future(job.future)
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=_DISCONNECT_POLL_S)
                if done:
                    return waiter.result()
                if await request.is_disconnected():
                    self.cancel(job, "client disconnected")
                    waiter.cancel()  # nobody will read the job's outcome
                    raise ClientGone()
        except asyncio.CancelledError:  # the server is stopping
            self.cancel(job, "server stopping")
            waiter.cancel()
            raise

    def stop(self, reason: str) -> None:
        """Refuse new jobs, drop the queued ones and stop the running one (without waiting)."""
        with self._lock:  # a Condition's lock is reentrant: cancel() takes it again
            self._closed = True
            for job in list(self._waiting):
                self.cancel(job, reason)
            if self.current is not None:
                self.cancel(self.current, reason)
            self._lock.notify()

    def close(self) -> None:
        """Stop everything and wait for the worker thread to end."""
        self.stop("server stopping")
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._lock.wait()
                if not self._waiting:
                    return
                job = self._waiting.popleft()
                if not job.future.set_running_or_notify_cancel():
                    continue  # its request was cancelled while it waited
                self.current = job
                job.state = "running"
                job.started = time.monotonic()
            log.info("job %d started", job.id)
            try:
                job.future.set_result(job.work(job))
                outcome = "finished"
            except (JobCancelled, Cancelled):
                reason = job.cancel_reason or "cancelled"
                job.future.set_exception(JobCancelled(reason, job.partial))
                outcome = f"cancelled ({reason})"
            except Exception as e:  # reported to the request that submitted it
                job.future.set_exception(e)
                outcome = f"failed: {type(e).__name__}: {e}"
            with self._lock:
                self.current = None
                job.state = "finished"
            log.info("job %d %s after %.1f s", job.id, outcome, time.monotonic() - job.started)
