"""What one request may ask of the server (kept free of the server's dependencies: the command
line reads its defaults).

The engine accepts far more than a shared server should run for a stranger (10,000 steps, 64
images a call, any size that fits in memory); these limits keep one request from holding the
queue for hours or the process from running out of memory.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """Per-request limits; the defaults suit a server on one GPU."""

    #: Largest request body, in bytes (base64 images make JSON bodies large).
    max_body_bytes: int = 50 * 2**20
    #: Largest width or height of a generated image, in pixels.
    max_side: int = 2048
    #: Largest width x height of a generated image.
    max_pixels: int = 2048 * 2048
    #: Largest width x height of an uploaded image, checked before its pixels are decoded.
    max_input_pixels: int = 4096 * 4096
    #: Most sampling steps per image.
    max_steps: int = 150
    #: Most images per request (A1111's batch_size x n_iter, OpenAI's n).
    max_images: int = 8
    #: Most requests waiting behind the running one; more get 503.
    max_queued: int = 32
