"""The committed type stubs of the compiled module are the ones pybind11-stubgen makes now, and the
public module holds no entry point that only the tests use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sdcpp
from sdcpp import _core

# _core has a submodule (_testing), so the stubs are a package: _core/__init__.pyi and _core/_testing.pyi.
COMMITTED = Path(__file__).parents[1] / "src/sdcpp/_core"
STUBS = ("__init__.pyi", "_testing.pyi")


def test_core_stubs_are_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pybind11_stubgen", "sdcpp._core", "-o", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = tmp_path / "sdcpp/_core"
    assert sorted(p.name for p in fresh.iterdir()) == sorted(STUBS)
    for name in STUBS:
        assert (fresh / name).read_text() == (COMMITTED / name).read_text(), (
            f"src/sdcpp/_core/{name} is stale: regenerate the stubs with `python -m pybind11_stubgen "
            "sdcpp._core -o /tmp/stubs && cp /tmp/stubs/sdcpp/_core/*.pyi src/sdcpp/_core/`"
        )


def test_installed_package_ships_the_stubs_and_py_typed() -> None:
    installed = Path(sdcpp.__file__).parent
    assert all((installed / "_core" / name).is_file() for name in STUBS)
    assert (installed / "py.typed").is_file()


# What used to be in _core itself and only the tests call (docs/development.md, "Test hooks").
TEST_ONLY = {
    "_abort_for_tests", "detect_family", "sample_methods", "schedulers", "lora_apply_modes",
}
TEST_ONLY_CONTEXT = {"refuse_op_for_tests", "encode_tokens", "encode_vector", "diffusion_model", "decode_latent"}


def test_test_hooks_are_not_in_the_public_module() -> None:
    assert TEST_ONLY.isdisjoint(dir(_core))
    assert TEST_ONLY_CONTEXT.isdisjoint(dir(_core.Context))
    assert not hasattr(_core.ImageBatch, "live_count") and not hasattr(_core.GenerationParams, "fields")
    assert "_abort_for_tests" not in dir(_core._testing), "no hook aborts the process: the test uses a real check"
    assert {"detect_family", "encode_tokens", "refuse_op", "live_image_batches"} <= set(dir(_core._testing))
