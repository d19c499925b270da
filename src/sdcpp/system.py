"""What this build of sdcpp is and what it can see."""

from __future__ import annotations

from typing import Any

from . import _core, _metal

__all__ = ["system_info"]


def system_info() -> dict[str, Any]:
    """Return, as plain data, what this build is and what it finds on this machine.

    Keys: ``version`` (sdcpp), ``engine`` (``version``, ``commit``, ``source``, ``ggml_version``,
    ``ggml_commit``), ``backends`` (compiled ggml backends, e.g. ``["CPU"]`` or
    ``["CUDA", "CPU"]``), ``devices`` (one dict per device: ``name``, ``description``, ``type``,
    ``backend``, ``memory_free``, ``memory_total``, and ``tensor_api``: whether a Metal device runs
    matrix products through Metal 4's tensor API, ``None`` for other devices), ``cpu_features``
    (instruction sets, e.g. ``{"AVX2": "1"}``), ``physical_cores`` and ``metal_tensor_api`` (who
    decided about the tensor API, in words; "not applicable (not macOS)" elsewhere).
    """
    info = _core.system_info()
    info["metal_tensor_api"] = _metal.describe()
    return info


def packed_cpu_product() -> bool:
    """Whether this build's CPU backend has engine patch 0056's packed product (x86 builds with AVX2,
    in a wider tile where the build has AVX-512: patch 0067): it keeps float32 activations in products
    with float16 weights and runs convolutions as CONV_2D instead of IM2COL + MUL_MAT."""
    return _core.system_info()["cpu_features"].get("PACKED_GEMM") == "1"
