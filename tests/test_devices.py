"""Device choice: device="auto" skips a GPU that cannot run the engine, with one warning.

The Metal cases run here with the device list and the probe faked; the macOS workflow runs the
real probe on a real Metal device.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import pytest

import sdcpp
from sdcpp import DeviceFallbackWarning, _core, devices
from sdcpp.devices import resolve_device

CPU = {"name": "CPU", "description": "Some CPU", "type": "cpu", "backend": "CPU"}
APPLE_GPU = {"name": "MTL0", "description": "Apple M1", "type": "gpu", "backend": "MTL"}
# What ggml's Metal backend lists where MTLCreateSystemDefaultDevice() finds nothing (a VM).
NO_METAL = {"name": "", "description": "", "type": "gpu", "backend": "MTL"}


def fake(monkeypatch: pytest.MonkeyPatch, found: list[dict], reasons: dict[str, Optional[str]]) -> list[str]:
    """Make the build "see" `found`; the probe answers from `reasons`. Returns the probed names."""
    probed: list[str] = []

    def probe(name: str) -> Optional[str]:
        probed.append(name)
        return reasons[name]

    monkeypatch.setattr(devices, "devices", lambda: found)
    monkeypatch.setattr(devices, "probe_device", probe)
    return probed


def test_auto_takes_a_metal_gpu_that_passes_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    probed = fake(monkeypatch, [APPLE_GPU, CPU], {"MTL0": None})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_device("auto") == "MTL0"
    assert probed == ["MTL0"]


def test_auto_falls_back_to_the_cpu_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    fake(monkeypatch, [APPLE_GPU, CPU], {"MTL0": "it does not support SOFT_MAX"})
    with pytest.warns(DeviceFallbackWarning) as record:
        assert resolve_device("auto") == "CPU"
    assert len(record) == 1
    message = str(record[0].message)
    assert "'Apple M1'" in message and "it does not support SOFT_MAX" in message
    assert "device='cpu'" in message


def test_auto_falls_back_where_metal_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    fake(monkeypatch, [NO_METAL, CPU], {"": "it could not be initialised"})
    with pytest.warns(DeviceFallbackWarning, match="skips the MTL device 'MTL': it could not be initialised"):
        assert resolve_device("auto") == "CPU"


def test_auto_does_not_probe_cuda_or_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = {"name": "CUDA0", "description": "NVIDIA H100", "type": "gpu", "backend": "CUDA"}
    probed = fake(monkeypatch, [cuda, CPU], {})
    assert resolve_device("auto") == "CUDA0"
    fake(monkeypatch, [CPU], {})
    assert resolve_device("auto") == "CPU"
    assert probed == []


def test_metal_names_the_mtl_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    probed = fake(monkeypatch, [APPLE_GPU, CPU], {})
    assert resolve_device("metal") == "MTL0"
    assert resolve_device("Metal:0") == "MTL0"
    assert resolve_device("mtl0") == "MTL0"
    assert probed == []  # a device the user names is taken as asked


def test_generator_on_auto_runs_on_the_cpu_after_the_fallback(
    monkeypatch: pytest.MonkeyPatch, sd15_file: Path
) -> None:
    fake(monkeypatch, [APPLE_GPU, *[d for d in _core.system_info()["devices"] if d["type"] == "cpu"]],
         {"MTL0": "it does not support SOFT_MAX"})
    with pytest.warns(DeviceFallbackWarning) as record:
        gen = sdcpp.Generator(sd15_file)
    with gen:
        assert gen.device == "CPU"
    assert len(record) == 1 and record[0].filename == __file__  # points at the caller's line


def test_the_real_probe_passes_on_the_cpu() -> None:
    assert _core.probe_device("CPU") is None


def test_the_real_probe_names_an_unknown_device() -> None:
    assert _core.probe_device("NOPE7") == "there is no device named 'NOPE7'"


# A GPU that the device list shows but that does not start: no machine has a hundredth CUDA device,
# so the engine's own start of it fails, as a real device's does when its driver refuses.
BROKEN_GPU = {"name": "CUDA99", "description": "Broken GPU", "type": "gpu", "backend": "CUDA"}


def test_the_engine_refuses_a_named_device_that_does_not_start(sd15_file: Path) -> None:
    with pytest.raises(sdcpp.DeviceError, match="^device 'CUDA99' failed to start; check its driver"):
        options = _core.LoadOptions()
        options.paths, options.device = {"model": str(sd15_file)}, "CUDA99"
        _core.Context(options)


def test_a_named_device_that_does_not_start_is_an_error_not_the_cpu(
    monkeypatch: pytest.MonkeyPatch, sd15_file: Path
) -> None:
    fake(monkeypatch, [BROKEN_GPU, CPU], {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(sdcpp.DeviceError, match="^device 'CUDA99' failed to start"):
            sdcpp.Generator(sd15_file, device="cuda")


def test_auto_runs_on_the_cpu_with_a_warning_when_the_gpu_does_not_start(
    monkeypatch: pytest.MonkeyPatch, sd15_file: Path
) -> None:
    fake(monkeypatch, [BROKEN_GPU, CPU], {})
    skipped = "skips the device 'CUDA99': device 'CUDA99' failed to start"
    with pytest.warns(DeviceFallbackWarning, match=skipped) as record:
        gen = sdcpp.Generator(sd15_file)
    with gen:
        assert gen.device == "CPU" and gen.flash_attn is False  # chosen again for the CPU
    assert len(record) == 1 and record[0].filename == __file__
