"""What the build reports about itself."""

from __future__ import annotations

import warnings

import sdcpp
from sdcpp.devices import probe_device, resolve_device


def test_system_info_lists_the_cpu_backend_and_device() -> None:
    info = sdcpp.system_info()
    assert info["version"] == sdcpp.__version__
    assert "CPU" in info["backends"]
    cpu = [d for d in info["devices"] if d["type"] == "cpu"]
    assert cpu and cpu[0]["name"] == "CPU" and cpu[0]["memory_total"] > 0
    assert info["engine"]["source"].startswith("stable-diffusion-cpp-python==0.4.7")
    # The pinned tree has no git history; the engine's `git describe` must not report sdcpp's own.
    assert info["engine"]["commit"] == "unknown"
    assert info["physical_cores"] >= 1
    assert all(isinstance(v, str) for v in info["cpu_features"].values())


def test_device_names_resolve_to_ggml_devices() -> None:
    assert resolve_device("cpu") == "CPU"
    assert resolve_device("CPU:0") == "CPU"
    gpus = [d["name"] for d in sdcpp.system_info()["devices"] if d["type"] in ("gpu", "igpu")]
    working = [name for name in gpus if probe_device(name) is None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sdcpp.DeviceFallbackWarning)  # for a GPU that fails the probe
        assert resolve_device("auto") == (working[0] if working else "CPU")
