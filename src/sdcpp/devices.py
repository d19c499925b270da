"""Choosing the ggml device a Generator runs on."""

from __future__ import annotations

import functools
import warnings
from typing import Any, Optional

from . import _core
from .errors import DeviceError

__all__ = ["DeviceFallbackWarning", "resolve_device", "devices", "probe_device"]

# ggml's own preference (engine: get_default_backend_name): a discrete GPU, then an integrated
# GPU, then the CPU.
_AUTO_ORDER = ("gpu", "igpu", "cpu")

# Backends whose devices "auto" tries before taking them. ggml's Metal backend lists the
# system's default GPU whatever it supports (and a nameless device where Metal is missing, as in
# a VM), while its kernels need SIMD-group reductions that older GPUs lack: the engine would
# abort in the middle of a generation. CUDA and Vulkan list only devices their runtime accepted.
_PROBED_BACKENDS = ("MTL",)

# Names users write for a backend, and ggml's name for it.
_BACKEND_ALIASES = {"metal": "MTL", "mtl": "MTL"}


class DeviceFallbackWarning(RuntimeWarning):
    """``device="auto"`` skipped a GPU that cannot run the engine and took the next device."""


def devices() -> list[dict[str, Any]]:
    """The devices this build can run on, as in ``system_info()["devices"]``."""
    return _core.system_info()["devices"]


@functools.lru_cache(maxsize=None)
def probe_device(name: str) -> Optional[str]:
    """Why the ggml device ``name`` cannot run the engine, or ``None`` when it can.

    The device is initialised and runs a small graph of the engine's operations, compared with
    the CPU's result (well under a second). The answer is kept for the life of the process.
    """
    return _core.probe_device(name)


def resolve_device(device: str) -> str:
    """Map a user's device string to a ggml device name.

    ``"auto"`` takes the first GPU (CUDA, Metal, ...) that works and falls back to the CPU; a
    Metal GPU that cannot run the engine's kernels is skipped with a
    :class:`DeviceFallbackWarning`. ``"cpu"``, ``"cuda"``, ``"metal"``, ``"vulkan"`` name a
    backend (its first device); ``"cuda:1"`` names the second device of a backend; a ggml device
    name (``"CUDA0"``, ``"MTL0"``) is taken as is.
    """
    if not isinstance(device, str):
        raise DeviceError(f"device must be a string such as 'auto', 'cpu' or 'cuda:0', not {device!r}")
    found = devices()
    if device == "auto":
        return _auto(found)
    for d in found:
        if d["name"].lower() == device.lower():
            return d["name"]
    backend, _, index = device.partition(":")
    backend = _BACKEND_ALIASES.get(backend.lower(), backend)
    same_backend = [d for d in found if d["backend"].lower() == backend.lower()]
    if same_backend and (index == "" or index.isdigit()):
        i = int(index or 0)
        if i < len(same_backend):
            return same_backend[i]["name"]
    available = ", ".join(f"'{d['name']}' ({d['description']})" for d in found) or "none"
    raise DeviceError(
        f"device {device!r} is not available in this build; devices found: {available}. "
        "Use device='auto' or 'cpu', or build sdcpp from its source with the backend you need: in a "
        "checkout, CMAKE_ARGS=\"-DSD_CUDA=ON\" python -m pip install . (Metal is on by default on macOS)."
    )


def _auto(found: list[dict[str, Any]]) -> str:
    for kind in _AUTO_ORDER:
        for d in found:
            if d["type"] != kind:
                continue
            if d["backend"] in _PROBED_BACKENDS:
                why = probe_device(d["name"])
                if why is not None:
                    label = d["description"] or d["name"] or d["backend"]
                    warn_skipped(f"{d['backend']} device {label!r}", why,
                                 "the next device (the CPU if there is no other)",
                                 stacklevel=4)  # the caller of Generator(...)
                    continue
            return d["name"]
    return "CPU"


def warn_skipped(device: str, why: str, instead: str, stacklevel: int) -> None:
    """Warn that ``device="auto"`` did not take ``device``; ``stacklevel`` 1 is the caller."""
    warnings.warn(
        f"sdcpp: device='auto' skips the {device}: {why}. Running on {instead}; pass "
        "device='cpu' to choose it and silence this warning.",
        DeviceFallbackWarning,
        stacklevel=stacklevel + 1,
    )
