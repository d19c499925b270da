"""The committed type stubs of the compiled module are the ones pybind11-stubgen makes now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sdcpp

COMMITTED = Path(__file__).parents[1] / "src/sdcpp/_core.pyi"


def test_core_stub_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pybind11_stubgen", "sdcpp._core", "-o", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = (tmp_path / "sdcpp/_core.pyi").read_text()
    assert fresh == COMMITTED.read_text(), (
        "src/sdcpp/_core.pyi is stale: regenerate it with "
        "`pybind11-stubgen sdcpp._core -o /tmp/stubs && cp /tmp/stubs/sdcpp/_core.pyi src/sdcpp/`"
    )


def test_installed_package_ships_the_stub_and_py_typed() -> None:
    installed = Path(sdcpp.__file__).parent
    assert (installed / "_core.pyi").is_file() and (installed / "py.typed").is_file()
