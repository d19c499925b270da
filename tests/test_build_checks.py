"""The build's prerequisites are checked when CMake configures, each with a message naming the fix.

Each test configures a copy of the build files (CMakeLists.txt and third_party/, not the engine tree,
which a configure may replace) with one prerequisite missing on purpose, and reads the message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.skipif(not (ROOT / "third_party" / "engine.cmake").exists(), reason="needs the source checkout"),
    pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake on PATH"),
    pytest.mark.skipif(sys.platform == "win32", reason="the stand-in tools are shell scripts"),
]


def configure(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "src"
    (source / "third_party").mkdir(parents=True)
    shutil.copy(ROOT / "CMakeLists.txt", source)
    shutil.copy(ROOT / "third_party" / "engine.cmake", source / "third_party")
    shutil.copytree(ROOT / "third_party" / "patches", source / "third_party" / "patches")
    cmd = ["cmake", "-S", str(source), "-B", str(tmp_path / "build"), "-DSKBUILD_PROJECT_NAME=sdcpp",
           "-DSKBUILD_PROJECT_VERSION=0.1.0", f"-DPython_EXECUTABLE={sys.executable}", *args]
    clean = {k: v for k, v in os.environ.items() if k not in ("CMAKE_ARGS", "CMAKE_GENERATOR")}
    return subprocess.run(cmd, capture_output=True, text=True, env={**clean, **(env or {})}, timeout=300)


def tool(tmp_path: Path, name: str, script: str) -> Path:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def one_line(text: str) -> str:
    """CMake wraps its messages; the checks read them as one line."""
    return " ".join(text.split())


def test_a_compiler_without_cxx17_is_named_with_the_fix(tmp_path: Path) -> None:
    real = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if real is None:
        pytest.skip("no C++ compiler on PATH")
    # A compiler as an old GCC is: it builds C++11 and refuses any -std=...17 flag.
    old = tool(tmp_path, "old-c++", f'for a in "$@"; do case "$a" in -std=*17) echo "unrecognized option $a" >&2; exit 1;; esac; done\nexec {real} "$@"\n')
    out = configure(tmp_path, f"-DCMAKE_CXX_COMPILER={old}")
    assert out.returncode != 0
    message = one_line(out.stderr)
    assert "cannot compile C++17 with <filesystem>" in message, out.stderr
    assert "-DCMAKE_CXX_COMPILER=" in message


def test_a_patch_that_is_not_gnu_patch_is_named_with_the_fix(tmp_path: Path) -> None:
    bsd_patch = tool(tmp_path, "patch", 'echo "patch 2.0-12u11-Apple"\n')
    out = configure(tmp_path, f"-DSDCPP_PATCH_EXE={bsd_patch}")
    assert out.returncode != 0
    message = one_line(out.stderr)
    assert f"{bsd_patch} is not GNU patch ('patch 2.0-12u11-Apple')" in message, out.stderr
    assert "apt install patch" in message and "brew install gpatch" in message


def test_a_failed_engine_download_names_the_offline_options(tmp_path: Path) -> None:
    # PIP_NO_INDEX: pip looks nowhere, as on a machine without network.
    out = configure(tmp_path, env={"PIP_NO_INDEX": "1"})
    assert out.returncode != 0
    message = one_line(out.stderr)
    assert "could not download stable-diffusion-cpp-python==0.4.7" in message, out.stderr
    assert "network access to the package index" in message
    assert "-DSDCPP_ENGINE_ARCHIVE=" in message and "-DSDCPP_ENGINE_DIR=" in message
