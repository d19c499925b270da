"""Giving freed memory back to the system between the suite's largest tests (SDXL with diffusers)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc


def release_freed_memory() -> None:
    """Collect reference cycles (diffusers pipelines have them), then return glibc's freed heap pages
    to the system: torch frees gigabytes of weights into malloc arenas that glibc otherwise keeps,
    and the next model loads on top of them."""
    gc.collect()
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name is not None else None
    if hasattr(libc, "malloc_trim"):  # glibc only
        libc.malloc_trim(0)
