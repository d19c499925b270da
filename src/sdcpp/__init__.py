"""Stable Diffusion from Python on stable-diffusion.cpp: CPU, CUDA and Metal.

>>> from sdcpp import Generator
>>> gen = Generator("dreamshaper_8.safetensors")
>>> gen.generate("a lighthouse at dusk", steps=20, seed=42)[0].save("out.png")
"""

from __future__ import annotations

import os as _os

from . import _metal
from ._native import import_core as _import_core
from ._openmp import apply_defaults as _openmp_defaults

_openmp_defaults(_os.environ)  # before the compiled module loads libgomp, which reads it once
_metal.apply()  # before ggml can create its Metal device: it reads the tensor-API switch then, once
_import_core()  # before anything imports sdcpp._core: a CUDA wheel may need its libraries loaded

from .errors import (
    Cancelled,
    DeviceError,
    GenerationError,
    InvalidArgumentError,
    ModelLoadError,
    ModelNotFoundError,
    SdcppError,
    UnsupportedOperation,
)
from .devices import DeviceFallbackWarning
from .generator import Generator, Tokens
from .inspect import ModelInfo, inspect
from .convert import FileExistsSdcppError, convert
from .images import GeneratedImage
from .names import CacheMode, HiresUpscaler, LoraApplyMode, Prediction, PreviewMode, Sampler, Scheduler
from .params import GenerationParams, HiresFix, SkipLayerGuidance, VaeTiling, VideoParams
from .upscaler import Upscaler
from .video import Video
from ._core import __version__
from .doctor import self_test
from .profiling import OpProfile, profile_ops
from .system import system_info

__all__ = [
    "CacheMode",
    "Cancelled",
    "DeviceError",
    "DeviceFallbackWarning",
    "FileExistsSdcppError",
    "GeneratedImage",
    "GenerationParams",
    "GenerationError",
    "Generator",
    "HiresFix",
    "HiresUpscaler",
    "InvalidArgumentError",
    "LoraApplyMode",
    "ModelInfo",
    "ModelLoadError",
    "ModelNotFoundError",
    "OpProfile",
    "Prediction",
    "PreviewMode",
    "Sampler",
    "Scheduler",
    "SdcppError",
    "SkipLayerGuidance",
    "UnsupportedOperation",
    "Tokens",
    "Upscaler",
    "VaeTiling",
    "Video",
    "VideoParams",
    "__version__",
    "convert",
    "inspect",
    "profile_ops",
    "self_test",
    "system_info",
]
