"""Imports the compiled module, first loading the CUDA libraries of NVIDIA's wheels if it needs them.

The CUDA wheels (``sdcpp-cu13``) do not carry libcudart and libcublas (hundreds of MB): they
depend on NVIDIA's ``nvidia-cuda-runtime`` and ``nvidia-cublas`` wheels, which install the
libraries into ``site-packages/nvidia/cu13/lib``, a folder the dynamic loader does not search.
When the import fails for want of one of them, they are loaded from there by path (the loader
then finds them by name) and the import is tried again. Other builds never get here.
"""

from __future__ import annotations

import ctypes
import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable

# In load order: cuBLAS needs cuBLASLt, and both need the runtime.
_CUDA_LIBRARIES = ("libcudart.so.{major}", "libcublasLt.so.{major}", "libcublas.so.{major}")
_MISSING = re.compile(r"lib(?:cudart|cublasLt|cublas)\.so\.(\d+)")


def nvidia_library_dirs(major: str) -> list[Path]:
    """The ``nvidia/cu<major>/lib`` folders of NVIDIA's wheels installed in this environment."""
    try:
        import nvidia  # a namespace package, present when any of NVIDIA's wheels is installed
    except ImportError:
        return []
    found = (Path(p) / f"cu{major}" / "lib" for p in nvidia.__path__)
    return [folder for folder in found if folder.is_dir()]


def load_cuda_libraries(
    error: ImportError,
    dirs: Callable[[str], Iterable[Path]] = nvidia_library_dirs,
    load: Callable[[str], object] = lambda path: ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL),
) -> bool:
    """Load the CUDA libraries named by ``error`` from NVIDIA's wheels; ``False`` if it names none
    or they are not installed."""
    missing = _MISSING.search(str(error))
    if not missing:
        return False
    major = missing.group(1)
    for folder in dirs(major):
        paths = [folder / name.format(major=major) for name in _CUDA_LIBRARIES]
        if all(p.is_file() for p in paths):
            for p in paths:
                load(str(p))
            return True
    return False


def import_core() -> ModuleType:
    try:
        return importlib.import_module("sdcpp._core")
    except ImportError as error:
        if not load_cuda_libraries(error):
            raise
        return importlib.import_module("sdcpp._core")
