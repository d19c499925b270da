"""What the build reports about itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import sdcpp
from sdcpp import _metal
from sdcpp._core import _testing
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


def _sysfs(root: Path, masks: list[str]) -> str:
    """A /sys/devices/system/cpu layout: cpuN/topology/thread_siblings holding masks[N]."""
    for cpu, mask in enumerate(masks):
        topology = root / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "thread_siblings").write_text(mask + "\n")
    return str(root)


NO_SMT = [f"{1 << cpu:04x}" for cpu in range(16)]  # 16 cores, one thread each: the H200 host's VM
SMT = [f"{(1 << cpu % 4) * 0x11:02x}" for cpu in range(8)]  # 4 cores, cpuN and cpuN+4 on one


@pytest.mark.parametrize(
    "masks, cpus, cores",
    [
        (NO_SMT, range(16), 16),  # the engine took half the CPUs above 4 here: 8
        (SMT, range(8), 4),
        (NO_SMT, [0, 1], 2),  # a process allowed two CPUs (taskset, a container's cpuset): 8 before
        (SMT, [1, 5], 1),  # both threads of one core
        (NO_SMT, [0, 1, 40], 2),  # an allowed CPU without a sysfs entry is not counted
    ],
)
def test_physical_cores_count_the_cores_of_the_allowed_cpus(tmp_path: Path, masks, cpus, cores) -> None:
    # Engine patch 0078: the engine read /sys/devices/system/cpu0/... (no such file), so it always fell
    # back to half the CPUs above 4, all of them at 4 or fewer, whatever the CPUs allowed to the process.
    assert _testing.count_cores_in(_sysfs(tmp_path, masks), list(cpus)) == cores


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sysfs and CPU affinity are Linux's")
def test_physical_cores_are_those_of_the_cpus_this_process_may_run_on() -> None:
    # The default thread count of a Generator: a process restricted to one CPU gets one thread.
    root = Path("/sys/devices/system/cpu")
    if not (root / "cpu0" / "topology" / "thread_siblings").exists():
        pytest.skip("this system shows no CPU topology in sysfs (the engine then counts the CPUs)")
    allowed = os.sched_getaffinity(0)
    masks = {(root / f"cpu{c}/topology/thread_siblings").read_text() for c in allowed}
    assert sdcpp.system_info()["physical_cores"] == len(masks)
    one = min(allowed)
    code = f"import os; os.sched_setaffinity(0, {{{one}}}); import sdcpp; print(sdcpp.system_info()['physical_cores'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split()[-1] == "1"


def test_device_names_resolve_to_ggml_devices() -> None:
    assert resolve_device("cpu") == "CPU"
    assert resolve_device("CPU:0") == "CPU"
    gpus = [d["name"] for d in sdcpp.system_info()["devices"] if d["type"] in ("gpu", "igpu")]
    working = [name for name in gpus if probe_device(name) is None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sdcpp.DeviceFallbackWarning)  # for a GPU that fails the probe
        assert resolve_device("auto") == (working[0] if working else "CPU")


def test_devices_say_whether_they_use_the_metal_tensor_api() -> None:
    info = sdcpp.system_info()
    for d in info["devices"]:
        assert d["tensor_api"] is None if d["backend"] != "MTL" else isinstance(d["tensor_api"], bool)
    if sys.platform != "darwin":
        assert info["metal_tensor_api"] == "not applicable (not macOS)"


@pytest.mark.parametrize(
    ("platform", "environ", "expected"),
    [
        ("darwin", {}, {_metal.GGML_DISABLE: "1"}),
        ("darwin", {_metal.OPT_IN: "0"}, {_metal.GGML_DISABLE: "1"}),
        ("darwin", {_metal.OPT_IN: "1"}, {}),
        # The user's own switches stand, whatever their value (ggml only asks whether they are set).
        ("darwin", {_metal.GGML_DISABLE: "0"}, {}),
        ("darwin", {_metal.GGML_ENABLE: "1"}, {}),
        ("darwin", {_metal.GGML_DISABLE: "1", _metal.OPT_IN: "1"}, {}),
        ("linux", {}, {}),
        ("win32", {}, {}),
    ],
)
def test_the_metal_tensor_api_default(platform: str, environ: dict[str, str], expected: dict[str, str]) -> None:
    assert _metal.tensor_api_default(platform, environ) == expected


def test_an_unreadable_opt_in_keeps_the_tensor_api_off_with_a_warning() -> None:
    with pytest.warns(RuntimeWarning, match="SDCPP_METAL_TENSOR='yes' is neither '1'"):
        assert _metal.tensor_api_default("darwin", {_metal.OPT_IN: "yes"}) == {_metal.GGML_DISABLE: "1"}


# Run in a fresh interpreter posing as macOS: records GGML_METAL_TENSOR_DISABLE at the moment
# sdcpp._core is about to be loaded (before any engine or ggml code runs), and as the C library
# sees it after the import, which is what ggml's getenv reads.
_IMPORT_AS_MAC = """
import ctypes, importlib.abc, json, os, sys
seen = {}
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "sdcpp._core":
            seen["at_core_import"] = os.environ.get("GGML_METAL_TENSOR_DISABLE")
sys.meta_path.insert(0, Watch())
sys.platform = "darwin"
import sdcpp
getenv = ctypes.CDLL(None).getenv
getenv.restype = ctypes.c_char_p
value = getenv(b"GGML_METAL_TENSOR_DISABLE")
print(json.dumps({
    "at_core_import": seen.get("at_core_import", "not imported"),
    "getenv": value.decode() if value is not None else None,
    "describe": sdcpp.system_info()["metal_tensor_api"],
}))
"""


def _import_as_mac(**environ: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GGML_METAL_", "SDCPP_METAL_"))}
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_AS_MAC], env={**env, **environ}, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_on_macos_the_tensor_api_is_off_before_the_engine_loads() -> None:
    seen = _import_as_mac()
    assert seen["at_core_import"] == "1" and seen["getenv"] == "1"
    assert seen["describe"].startswith("off: sdcpp set GGML_METAL_TENSOR_DISABLE=1")


def test_on_macos_the_users_own_setting_is_kept() -> None:
    seen = _import_as_mac(GGML_METAL_TENSOR_DISABLE="0")
    assert seen["at_core_import"] == "0" and seen["getenv"] == "0"
    assert seen["describe"] == "off: GGML_METAL_TENSOR_DISABLE is set in the environment"


def test_on_macos_the_opt_in_leaves_the_tensor_api_to_ggml() -> None:
    seen = _import_as_mac(SDCPP_METAL_TENSOR="1")
    assert seen["at_core_import"] is None and seen["getenv"] is None
    assert "used on Apple M5, M6, A19 and A20 GPUs" in seen["describe"]
