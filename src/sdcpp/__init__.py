"""Stable Diffusion from Python on stable-diffusion.cpp: CPU, CUDA and Metal.

>>> from sdcpp import Generator
>>> gen = Generator("dreamshaper_8.safetensors")
>>> gen.generate("a lighthouse at dusk", steps=20, seed=42)[0].save("out.png")
"""

from __future__ import annotations

from .errors import (
    DeviceError,
    GenerationError,
    InvalidArgumentError,
    ModelLoadError,
    ModelNotFoundError,
    SdcppError,
)
from .generator import Generator, Tokens
from .images import GeneratedImage
from .names import Sampler, Scheduler
from ._core import __version__
from .system import system_info

__all__ = [
    "DeviceError",
    "GeneratedImage",
    "GenerationError",
    "Generator",
    "InvalidArgumentError",
    "ModelLoadError",
    "ModelNotFoundError",
    "Sampler",
    "Scheduler",
    "SdcppError",
    "Tokens",
    "__version__",
    "system_info",
]
