"""The CUDA wheels' libraries are loaded from NVIDIA's wheels when, and only when, the import needs them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sdcpp._native import load_cuda_libraries, nvidia_library_dirs

NAMES = ["libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13"]
MISSING_CUBLAS = ImportError("libcublas.so.13: cannot open shared object file: No such file or directory")


def wheel_tree(root: Path, names: list[str] = NAMES) -> Path:
    """What nvidia-cuda-runtime and nvidia-cublas install: site-packages/nvidia/cu13/lib/..."""
    lib = root / "nvidia" / "cu13" / "lib"
    lib.mkdir(parents=True)
    for name in names:
        (lib / name).write_bytes(b"")
    return lib


def test_the_missing_libraries_are_loaded_in_order(tmp_path: Path) -> None:
    lib = wheel_tree(tmp_path)
    loaded: list[str] = []
    assert load_cuda_libraries(MISSING_CUBLAS, dirs=lambda major: [lib], load=loaded.append)
    assert loaded == [str(lib / name) for name in NAMES]


def test_other_import_errors_load_nothing(tmp_path: Path) -> None:
    lib = wheel_tree(tmp_path)
    loaded: list[str] = []
    error = ImportError("libgomp.so.1: cannot open shared object file")
    assert not load_cuda_libraries(error, dirs=lambda major: [lib], load=loaded.append)
    assert loaded == []


def test_an_incomplete_install_loads_nothing(tmp_path: Path) -> None:
    lib = wheel_tree(tmp_path, NAMES[:1])  # the runtime without cuBLAS
    loaded: list[str] = []
    assert not load_cuda_libraries(MISSING_CUBLAS, dirs=lambda major: [lib], load=loaded.append)
    assert loaded == []


def test_nvidia_library_dirs_finds_the_wheels_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = wheel_tree(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nvidia", raising=False)
    assert lib in nvidia_library_dirs("13")
    assert nvidia_library_dirs("12") == []
