"""A request's generation, as both APIs ask for it: checked against the limits, queued, run.

Generation goes through the public :class:`sdcpp.Generator` alone; a request becomes ``iterations``
calls of :meth:`Generator.generate` of ``batch`` images each (A1111's ``n_iter`` x ``batch_size``),
image ``i`` of the request with seed ``seed + i``, as A1111 numbers them.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Mapping, Optional

from starlette.requests import Request

from ..errors import InvalidArgumentError
from ..generator import Generator
from ..images import GeneratedImage
from .codec import png_bytes
from .errors import FieldError, field_error
from .jobs import ClientGone, Job, JobCancelled, JobQueue, QueueFull
from .limits import Limits

__all__ = ["Task", "Result", "Server", "check_limits", "submit"]

log = logging.getLogger("sdcpp.server")

#: Jobs preview every step by latent projection (1/8 of the image's size, nearly free to make).
PREVIEW_EVERY = 1


@dataclass
class Server:
    """What the routes share: the model, its queue, the limits and A1111's settable options."""

    generator: Generator
    queue: JobQueue
    limits: Limits
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return os.path.basename(self.generator.model)


@dataclass
class Task:
    """One request's generation: ``settings`` are keyword arguments of ``Generator.generate``."""

    prompt: str
    negative_prompt: str
    settings: dict[str, Any]
    seed: int = -1
    batch: int = 1
    iterations: int = 1

    def __post_init__(self) -> None:
        if self.seed == -1:  # drawn here so that every iteration continues the same numbering
            self.seed = secrets.randbelow(2**32)

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.batch * self.iterations)]

    @property
    def label(self) -> str:
        s = self.settings
        return f"{s['width']}x{s['height']}, {s['steps']} steps, {self.batch * self.iterations} image(s)"


@dataclass
class Result:
    """The images finished, as (image, PNG bytes); ``interrupted`` if the job was stopped early."""

    images: list[tuple[GeneratedImage, bytes]]
    interrupted: bool = False


def check_limits(server: Server, task: Task, fields: Mapping[str, str]) -> None:
    """Refuse what the engine would run but this server should not; ``fields`` names the API's fields."""
    limits, s = server.limits, task.settings
    multiple = server.generator.size_multiple

    def refuse(name: str, message: str) -> None:
        raise FieldError(fields.get(name, name), message)

    for name in ("width", "height"):
        if not 1 <= s[name] <= limits.max_side:
            refuse(name, f"{s[name]} is outside 1 to {limits.max_side} (sdcpp serve --max-side)")
        if s[name] % multiple:
            refuse(name, f"must be a multiple of {multiple} for this model, not {s[name]}")
    if s["width"] * s["height"] > limits.max_pixels:
        refuse("width", f"{s['width']}x{s['height']} is over the limit of {limits.max_pixels} pixels (--max-pixels)")
    if not 1 <= s["steps"] <= limits.max_steps:
        refuse("steps", f"{s['steps']} is outside 1 to {limits.max_steps} (sdcpp serve --max-steps)")
    for name, value in (("batch", task.batch), ("iterations", task.iterations)):
        if value < 1:
            refuse(name, f"must be at least 1, not {value}")
    if task.batch * task.iterations > limits.max_images:
        refuse("batch", f"{task.batch * task.iterations} images is over the limit of {limits.max_images} a request"
                        " (--max-images)")


def _run(generator: Generator, task: Task, job: Job) -> list[tuple[GeneratedImage, bytes]]:
    """The worker thread's part: generate, and encode each PNG off the event loop."""
    for i in range(task.iterations):
        job.check()
        job.iteration, job.step = i, 0  # the last round's step count would read as this one's
        images = generator.generate(
            task.prompt, task.negative_prompt, seed=task.seed + i * task.batch, batch=task.batch,
            progress=job.progress, preview=job.preview, preview_every=PREVIEW_EVERY, **task.settings,
        )
        job.partial.extend((image, png_bytes(image)) for image in images)
    return job.partial


async def submit(server: Server, request: Request, task: Task, fields: Mapping[str, str]) -> Optional[Result]:
    """Run ``task`` (checked with :func:`check_limits`) through the queue; None when the client
    went away (the job was cancelled).

    ``fields`` maps the Generator's argument names to the API's, so that errors name the field
    the client sent.
    """
    try:
        images = await server.queue.run(request, task.label, partial(_run, server.generator, task), task.iterations)
    except QueueFull as e:
        raise FieldError(None, str(e), status=503) from None
    except InvalidArgumentError as e:
        raise field_error(e, fields) from None
    except ClientGone:
        return None
    except JobCancelled as e:
        if e.reason != "interrupted":
            raise FieldError(None, f"the job was cancelled: {e.reason}", status=503) from None
        return Result(e.partial, interrupted=True)
    return Result(images)

