"""Keeps ggml's Metal 4 tensor-API matrix products off on macOS unless the user asks for them.

On Apple M5, M6, A19 and A20 GPUs the pinned ggml runs ``kernel_mul_mm`` through Metal 4's tensor
API (``has_tensor`` in ggml-metal-device.m); older chips keep the SIMD-group kernels. That path is
publicly reported to compute wrong results on shapes Stable Diffusion is full of (blank images on
an M5 Max, leejet/stable-diffusion.cpp#1990; a K that is not a multiple of 32, llama.cpp#27450;
outputs whose column count is 64 modulo 128, like SD's 320-channel layers), and ggml's own remedy
is ``GGML_METAL_TENSOR_DISABLE``: set, with any value, it turns the tensor API off.

When ggml reads it: ``ggml_metal_device_init`` reads it once, when the Metal device is created.
That happens in ``ggml_backend_metal_reg()``, which ggml's backend registry calls from its
constructor, a function-local static built at the first call of any ``ggml_backend_reg_*`` or
``ggml_backend_dev_*`` function (the first ``system_info()``, device choice, op or Generator), not
at library load. ``sdcpp/__init__.py`` applies the default before it even imports ``_core``, so
no engine code runs before it. A value set after ``import sdcpp`` may come too late: set these
variables in the shell, or in ``os.environ`` before the import.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Mapping, MutableMapping, Optional

# ggml's switches (ggml-metal-device.m): DISABLE turns the tensor API off whatever its value;
# ENABLE turns it on for chips older than the M5 / A19, where ggml leaves it off by default.
GGML_DISABLE = "GGML_METAL_TENSOR_DISABLE"
GGML_ENABLE = "GGML_METAL_TENSOR_ENABLE"
# sdcpp's opt-in: "1" leaves the choice to ggml (tensor API on M5, M6, A19, A20), "0" or unset keeps it off.
OPT_IN = "SDCPP_METAL_TENSOR"


def tensor_api_default(platform: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment variables sdcpp sets before ggml starts, given ``sys.platform`` and the environment.

    Nothing off macOS; nothing when the user set one of ggml's own switches (their choice stands)
    or opted in with ``SDCPP_METAL_TENSOR=1``; else ``GGML_METAL_TENSOR_DISABLE=1``.
    """
    if platform != "darwin" or GGML_DISABLE in environ or GGML_ENABLE in environ:
        return {}
    if _opted_in(environ.get(OPT_IN)):
        return {}
    return {GGML_DISABLE: "1"}


def _opted_in(value: Optional[str]) -> bool:
    if value in (None, "", "0"):
        return False
    if value == "1":
        return True
    warnings.warn(
        f"sdcpp: {OPT_IN}={value!r} is neither '1' (use the Metal tensor API where ggml would) nor '0'; "
        "keeping it off.",
        RuntimeWarning,
        stacklevel=3,
    )
    return False


# What `apply` set in this process, for `describe`.
applied: dict[str, str] = {}


def apply(platform: str = sys.platform, environ: MutableMapping[str, str] = os.environ) -> None:
    """Set the default into ``environ`` (``os.environ`` also sets the process environment ggml reads)."""
    default = tensor_api_default(platform, environ)
    environ.update(default)
    applied.update(default)


def describe(platform: str = sys.platform, environ: Mapping[str, str] = os.environ) -> str:
    """Who decided whether Metal's matrix products may use the tensor API, in words (for ``system_info``)."""
    if platform != "darwin":
        return "not applicable (not macOS)"
    if GGML_DISABLE in applied:
        return f"off: sdcpp set {GGML_DISABLE}=1 (set {OPT_IN}=1 before importing sdcpp to use it)"
    if GGML_DISABLE in environ:
        return f"off: {GGML_DISABLE} is set in the environment"
    if GGML_ENABLE in environ:
        return f"left to ggml ({GGML_ENABLE} is set): used on every GPU of the Metal 4 family"
    return f"left to ggml ({OPT_IN}=1): used on Apple M5, M6, A19 and A20 GPUs"
