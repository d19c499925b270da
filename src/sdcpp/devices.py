"""Choosing the ggml device a Generator runs on."""

from __future__ import annotations

from typing import Any

from . import _core
from .errors import DeviceError

__all__ = ["resolve_device", "devices"]

# ggml's own preference (engine: get_default_backend_name): a discrete GPU, then an integrated
# GPU, then the CPU.
_AUTO_ORDER = ("gpu", "igpu", "cpu")


def devices() -> list[dict[str, Any]]:
    """The devices this build can run on, as in ``system_info()["devices"]``."""
    return _core.system_info()["devices"]


def resolve_device(device: str) -> str:
    """Map a user's device string to a ggml device name.

    ``"auto"`` takes the first GPU (CUDA, Metal, ...) and falls back to the CPU. ``"cpu"``,
    ``"cuda"``, ``"metal"``, ``"vulkan"`` name a backend (its first device); ``"cuda:1"`` names
    the second device of a backend; a ggml device name (``"CUDA0"``, ``"MTL0"``) is taken as is.
    """
    if not isinstance(device, str):
        raise DeviceError(f"device must be a string such as 'auto', 'cpu' or 'cuda:0', not {device!r}")
    found = devices()
    if device == "auto":
        for kind in _AUTO_ORDER:
            for d in found:
                if d["type"] == kind:
                    return d["name"]
    for d in found:
        if d["name"].lower() == device.lower():
            return d["name"]
    backend, _, index = device.partition(":")
    same_backend = [d for d in found if d["backend"].lower() == backend.lower()]
    if same_backend and (index == "" or index.isdigit()):
        i = int(index or 0)
        if i < len(same_backend):
            return same_backend[i]["name"]
    available = ", ".join(f"'{d['name']}' ({d['description']})" for d in found) or "none"
    raise DeviceError(
        f"device {device!r} is not available in this build; devices found: {available}. "
        "Use device='auto' or 'cpu', or rebuild with the backend you need "
        "(CMAKE_ARGS=\"-DSD_CUDA=ON\" pip install sdcpp --no-binary sdcpp)."
    )
