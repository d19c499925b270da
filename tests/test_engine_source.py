"""third_party/patches/ is a clean stacked series on the pinned engine source (docs/engine-patches.md).

Each patch applies, in order, to a fresh unpack of the pinned archive with no offset and no fuzz, and
leaves no .orig or .rej file: a patch that needs an offset leaves a backup that the source distribution
would ship, and one that needs fuzz may apply somewhere it was not written for.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATCHES = sorted((ROOT / "third_party" / "patches").glob("*.patch"))
ENGINE_CMAKE = ROOT / "third_party" / "engine.cmake"

pytestmark = pytest.mark.skipif(
    not PATCHES or not ENGINE_CMAKE.exists(), reason="needs the source checkout (third_party/), not an installed wheel"
)


def engine_setting(name: str) -> str:
    """A ``set(NAME "value")`` of third_party/engine.cmake: the one place the pin is written."""
    found = re.search(rf'^set\({name} "([^"]+)"\)', ENGINE_CMAKE.read_text(), re.MULTILINE)
    assert found, f"{name} is not set in {ENGINE_CMAKE}"
    return found.group(1)


def given_archives() -> list[Path]:
    """Where a build of this checkout took the archive from: -DSDCPP_ENGINE_ARCHIVE (in CMAKE_ARGS or a
    build folder's CMake cache), or the build's own download."""
    candidates = re.findall(r"-DSDCPP_ENGINE_ARCHIVE=(\S+)", os.environ.get("CMAKE_ARGS", ""))
    for cache in (ROOT / "build").glob("*/CMakeCache.txt"):
        candidates += re.findall(r"^SDCPP_ENGINE_ARCHIVE:FILEPATH=(.+)$", cache.read_text(errors="replace"), re.MULTILINE)
    paths = [Path(c) for c in candidates if c]
    return paths + sorted((ROOT / "build").glob("*/engine-download/*.tar.gz"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sha256 = engine_setting("SDCPP_ENGINE_SHA256")
    for path in given_archives():
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
            return path
    folder = tmp_path_factory.mktemp("engine-download")
    package = engine_setting("SDCPP_ENGINE_PACKAGE")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", str(folder), package]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no local copy of {package} and pip could not download it:\n{out.stderr}")
        pytest.skip(f"no local copy of {package} (build this checkout first, or give network access)")
    (path,) = folder.glob("*.tar.gz")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    return path


@pytest.fixture
def fresh_engine(archive: Path, tmp_path: Path) -> Path:
    member = engine_setting("SDCPP_ENGINE_MEMBER")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(member + "/")]
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path, members=members, filter="data")
        else:  # Python without extraction filters (before 3.9.17 / 3.10.12)
            tar.extractall(tmp_path, members=members)
    return tmp_path / member


def gnu_patch() -> str:
    for name in ("gpatch", "patch"):
        exe = shutil.which(name)
        if exe and "GNU patch" in subprocess.run([exe, "--version"], capture_output=True, text=True).stdout:
            return exe
    pytest.fail("GNU patch is not on PATH; the build needs it too (docs/building.md)")


def backups(tree: Path) -> list[str]:
    return sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.suffix in (".orig", ".rej"))


def test_every_patch_applies_in_order_with_no_offset_or_fuzz(fresh_engine: Path) -> None:
    patch = gnu_patch()
    for p in PATCHES:
        # No --quiet and no --no-backup-if-mismatch: GNU patch then says "offset" or "fuzz" for any
        # hunk that did not apply exactly where it was written, and leaves a .orig beside the file.
        out = subprocess.run([patch, "-p1", "--batch", "--forward", "-i", str(p)], cwd=fresh_engine, capture_output=True, text=True)
        assert out.returncode == 0, f"{p.name} does not apply:\n{out.stdout}{out.stderr}"
        inexact = [line for line in out.stdout.splitlines() if not line.startswith("patching file ")]
        assert not inexact, f"{p.name} does not apply exactly; regenerate it (docs/engine-patches.md):\n" + "\n".join(inexact)
    assert backups(fresh_engine) == []


def test_the_built_engine_tree_holds_no_backup_files() -> None:
    # The tree the build fills, and the source distribution ships.
    tree = ROOT / "third_party" / "stable-diffusion.cpp"
    if not (tree / ".sdcpp-stamp").exists():
        pytest.skip("this checkout has not been built (or was built with -DSDCPP_ENGINE_DIR)")
    assert backups(tree) == []
