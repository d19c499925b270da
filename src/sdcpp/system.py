"""What this build of sdcpp is and what it can see."""

from __future__ import annotations

from typing import Any

from . import _core

__all__ = ["system_info"]


def system_info() -> dict[str, Any]:
    """Return, as plain data, what this build is and what it finds on this machine.

    Keys: ``version`` (sdcpp), ``engine`` (``version``, ``commit``, ``source``, ``ggml_version``,
    ``ggml_commit``), ``backends`` (compiled ggml backends, e.g. ``["CPU"]`` or
    ``["CUDA", "CPU"]``), ``devices`` (one dict per device: ``name``, ``description``, ``type``,
    ``backend``, ``memory_free``, ``memory_total``), ``cpu_features`` (instruction sets, e.g.
    ``{"AVX2": "1"}``) and ``physical_cores``.
    """
    return _core.system_info()
