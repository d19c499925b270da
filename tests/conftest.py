"""Random-weight models with the real SD 1.x and SDXL architectures, built once per test session
(SDXL only when a test asks for it).

Set SDCPP_TEST_MODELS to a folder to keep them between sessions (they are rebuilt when
tests/models.py, or for SDXL tests/models_sdxl.py, changes).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import threading
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import sdcpp

from . import models, models_dit, models_extra, models_lora, models_qwen_image, models_sd2, models_sdxl, models_wan
from .memory import release_freed_memory


_MEASURED = pytest.StashKey[dict]()
_FOOTPRINT = pytest.StashKey[list]()
_BASETEMP = pytest.StashKey[Path]()
_DISK_PEAK = pytest.StashKey[int]()  # MiB, in the current test file
_DISPOSABLE = pytest.StashKey[dict]()  # fixture -> the model files it built for this run alone
_LAST_USE = pytest.StashKey[dict]()  # test -> the fixtures no later test needs


def _rss_mib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20


def _disk_mib(folder: Path) -> int:
    used = sum(os.lstat(os.path.join(top, name)).st_blocks for top, _, names in os.walk(folder) for name in names)
    return used * 512 // 2**20


@pytest.fixture(scope="module", autouse=True)
def footprint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """After each test file, hand freed memory back to the OS and note what the test process holds, and
    the most disk pytest's temporary folder held between two of its tests.

    Tests that start a child interpreter (Ctrl-C, the server, the command line) share the machine with
    this process: what the files before them keep alive is listed at the end of the run.
    """
    start = time.monotonic()
    request.config.stash[_BASETEMP] = tmp_path_factory.getbasetemp()
    request.config.stash[_DISK_PEAK] = 0
    yield
    disk = request.config.stash[_DISK_PEAK]
    release_freed_memory()
    if os.path.exists("/proc/self/statm"):
        request.config.stash.setdefault(_FOOTPRINT, []).append(
            (request.node.nodeid, time.monotonic() - start, _rss_mib(), disk))


@pytest.fixture(scope="session")
def measured(pytestconfig: pytest.Config) -> dict[str, str]:
    """Stage -> what the parity tests measured, shown at the end of the test report."""
    return pytestconfig.stash.setdefault(_MEASURED, {})


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    rows = config.stash.get(_FOOTPRINT, [])
    if rows:
        terminalreporter.write_sep("-", "test files: seconds, the test process's memory after each, most disk used")
        for name, seconds, rss, disk in rows:
            terminalreporter.write_line(f"{name:<40} {seconds:7.1f} s {rss:7d} MiB {disk / 1024:7.1f} GiB")
    lines = config.stash.get(_MEASURED, {})
    if lines:
        terminalreporter.write_sep("-", 'sdcpp against diffusers (docs/correctness.md)')
        for stage, text in lines.items():
            terminalreporter.write_line(f"{stage}: {text}")


def ticks_while(call: Callable[[], object]) -> tuple[int, float]:
    """How often a Python thread ticked (every 10 ms) while ``call()`` ran, and the seconds it ran: a
    call that releases the GIL lets it tick about seconds / 0.01 times."""
    ticks = 0
    done = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.01)

    ticker = threading.Thread(target=tick)
    ticker.start()
    start = time.perf_counter()
    try:
        call()
    finally:
        done.set()
        ticker.join()
    return ticks, time.perf_counter() - start


# CI installs .[parity]: there a missing reference fails, it is not skipped (as in test_parity.py).
needs_reference = pytest.mark.skipif(
    not os.environ.get("CI") and importlib.util.find_spec("diffusers") is None,
    reason="needs the reference: pip install '.[parity]'",
)


def built(request: pytest.FixtureRequest, path: Path, write: Callable[[Path], object]) -> Path:
    """``models.build_once(path, write)`` for the fixture ``request`` belongs to. Models made for this
    run alone (no SDCPP_TEST_MODELS) are deleted after the last test that uses the fixture: together
    they are larger than CI's free disk (a run once ended with "failed to write GGUF data"). "Uses" is
    as pytest collects it (arguments, usefixtures, fixtures' arguments); a fixture a test reaches only
    through ``request.getfixturevalue`` keeps its files to the end of the run."""
    path = models.build_once(path, write)
    if not os.environ.get("SDCPP_TEST_MODELS"):
        request.config.stash.setdefault(_DISPOSABLE, {}).setdefault(request.fixturename, []).append(path)
    return path


def pytest_collection_finish(session: pytest.Session) -> None:
    last = {}
    for item in session.items:
        last.update(dict.fromkeys(item.fixturenames, item.nodeid))  # every fixture the test needs, however indirectly
    by_test: dict[str, list[str]] = {}
    for fixture, nodeid in last.items():
        by_test.setdefault(nodeid, []).append(fixture)
    session.config.stash[_LAST_USE] = by_test


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    if _BASETEMP in item.config.stash:
        peak = max(item.config.stash[_DISK_PEAK], _disk_mib(item.config.stash[_BASETEMP]))
        item.config.stash[_DISK_PEAK] = peak
    result = yield
    disposable = item.config.stash.get(_DISPOSABLE, {})
    for fixture in item.config.stash.get(_LAST_USE, {}).get(item.nodeid, ()):
        for path in disposable.pop(fixture, ()):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            path.with_name(path.name + ".done").unlink()
    return result


def _cache_dir(tmp_path_factory: pytest.TempPathFactory, *builders) -> Path:
    keep = os.environ.get("SDCPP_TEST_MODELS")
    if not keep:
        return tmp_path_factory.mktemp("models")
    # Keyed by the builders' source, so a changed builder never serves stale weights.
    key = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in builders)).hexdigest()[:12]
    folder = Path(keep) / key
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cache_dir(tmp_path_factory, models)


@pytest.fixture(scope="session")
def sdxl_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cache_dir(tmp_path_factory, models, models_sdxl)


@pytest.fixture(scope="session")
def extras_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cache_dir(tmp_path_factory, models, models_extra)


@pytest.fixture(scope="session")
def controlnet_file(request: pytest.FixtureRequest, extras_dir: Path) -> Path:
    """An SD 1.5 ControlNet (720 MB)."""
    return built(request, extras_dir / "controlnet-sd15.safetensors", models_extra.write_controlnet)


@pytest.fixture(scope="session")
def taesd_file(request: pytest.FixtureRequest, extras_dir: Path) -> Path:
    """A TAESD for SD 1.x, as diffusers' AutoencoderTiny saves it (5 MB)."""
    return built(request, extras_dir / "taesd.safetensors", models_extra.write_taesd)


@pytest.fixture(scope="session")
def sd15_components(request: pytest.FixtureRequest, extras_dir: Path) -> Path:
    """The weights of sd15_file as separate diffusion_model, vae and clip_l files (2.1 GB)."""
    return built(request, extras_dir / "sd15-components", models_extra.write_sd15_components)


@pytest.fixture(scope="session")
def other_vae(request: pytest.FixtureRequest, extras_dir: Path) -> Path:
    """An SD 1.5 VAE file with other weights than sd15_file's (seed 1; 160 MB)."""
    write = partial(models_extra.write_sd15_components, parts=("vae",), seed=1)
    return built(request, extras_dir / "vae-seed1", write) / "vae.safetensors"


@pytest.fixture(scope="session")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LoRAs for SD 1.5 in both naming schemes: kohya.safetensors and peft.safetensors."""
    folder = _cache_dir(tmp_path_factory, models, models_lora) / "loras"
    folder.mkdir(exist_ok=True)
    models.build_once(folder / "kohya.safetensors", models_lora.write_kohya_lora)
    models.build_once(folder / "peft.safetensors", models_lora.write_peft_lora)
    return folder


@pytest.fixture(scope="session")
def embedding_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two folders, each with a 2-vector embedding 'MyStyle.safetensors' of different values."""
    root = _cache_dir(tmp_path_factory, models, models_lora)
    folders = []
    for seed in (3, 4):
        folder = root / f"embeddings-{seed}"
        folder.mkdir(exist_ok=True)
        models.build_once(folder / "MyStyle.safetensors", partial(models_lora.write_embedding, seed=seed))
        folders.append(folder)
    return folders[0], folders[1]


@pytest.fixture(scope="session")
def sd15_file(request: pytest.FixtureRequest, model_dir: Path) -> Path:
    return built(request, model_dir / "sd15.safetensors", models.write_sd15_single_file)


@pytest.fixture(scope="session")
def sd15_folder(request: pytest.FixtureRequest, model_dir: Path) -> Path:
    return built(request, model_dir / "sd15-diffusers", models.write_sd15_diffusers)


@pytest.fixture(scope="session")
def sd15_folder_f32(request: pytest.FixtureRequest, model_dir: Path) -> Path:
    """The diffusers folder in float32 (about 4 GB): what both sides load for the parity tests."""
    return built(request, model_dir / "sd15-diffusers-f32", partial(models.write_sd15_diffusers, dtype=np.float32))


@pytest.fixture(scope="session")
def sdxl_file(request: pytest.FixtureRequest, sdxl_model_dir: Path) -> Path:
    """SDXL base 1.0 as one float16 file (6.9 GB; about 50 s to write on 2 cores)."""
    return built(request, sdxl_model_dir / "sdxl.safetensors", models_sdxl.write_sdxl_single_file)


@pytest.fixture(scope="session")
def sdxl_folder(request: pytest.FixtureRequest, sdxl_model_dir: Path) -> Path:
    """SDXL base 1.0 as a float16 diffusers folder (6.9 GB)."""
    return built(request, sdxl_model_dir / "sdxl-diffusers", models_sdxl.write_sdxl_diffusers)


@pytest.fixture(scope="session")
def dit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cache_dir(tmp_path_factory, models, models_dit)


@pytest.fixture(scope="session")
def flux_files(request: pytest.FixtureRequest, dit_dir: Path) -> dict[str, Path]:
    """Flux.1 dev as the files people download: transformer, VAE and CLIP-L (420 MB; no T5)."""
    return {
        "diffusion_model": built(request, dit_dir / "flux1-dev.safetensors", models_dit.write_flux),
        "vae": built(request, dit_dir / "ae.safetensors", models_dit.write_vae),
        "clip_l": built(request, dit_dir / "clip_l.safetensors", models_dit.write_clip_l),
    }


@pytest.fixture(scope="session")
def flux_gguf_files(request: pytest.FixtureRequest, flux_files: dict[str, Path], dit_dir: Path) -> dict[str, Path]:
    """flux_files with the transformer as q4_0 GGUF, named as city96's quantizations are (no prefix)."""
    gguf = built(request, dit_dir / "flux1-dev-q4_0.gguf", models_dit.write_flux_gguf)
    return {**flux_files, "diffusion_model": gguf}


@pytest.fixture(scope="session")
def sd3_files(request: pytest.FixtureRequest, flux_files: dict[str, Path], dit_dir: Path) -> dict[str, Path]:
    """SD3.5: the MMDiT as q4_0 GGUF (1.1 GB), with the VAE and CLIP-L it shares with Flux (no clip_g, no T5)."""
    mmdit = built(request, dit_dir / "sd3.5-mmdit.q4_0.gguf", models_dit.write_sd3)
    return {**flux_files, "diffusion_model": mmdit}


@pytest.fixture(scope="session")
def qwen_image_files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Qwen-Image as the files people download: the transformer and Qwen2.5-VL as q4_0 GGUF, the Wan 2.1
    VAE in float16 (830 MB; tests/models_qwen_image.py)."""
    folder = _cache_dir(tmp_path_factory, models, models_dit, models_qwen_image)
    return {
        "diffusion_model": built(request, folder / "qwen-image-q4_0.gguf", models_qwen_image.write_dit),
        "llm": built(request, folder / "qwen2.5-vl-7b-q4_0.gguf", models_qwen_image.write_llm),
        "vae": built(request, folder / "qwen_image_vae.safetensors", models_qwen_image.write_vae),
    }


@pytest.fixture(scope="session")
def wan_files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wan 2.1 T2V 1.3B as the files people download: the transformer as q4_0 GGUF (0.8 GB) and the VAE
    (254 MB); no umT5 (models_wan.py). About 20 s to write."""
    folder = _cache_dir(tmp_path_factory, models, models_dit, models_qwen_image, models_wan)
    return {
        "diffusion_model": built(request, folder / "wan2.1-t2v-1.3b-q4_0.gguf", models_wan.write_wan_t2v),
        "vae": built(request, folder / "wan_2.1_vae.safetensors", models_wan.write_wan_vae),
    }


@pytest.fixture(scope="session")
def sd2_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cache_dir(tmp_path_factory, models, models_sd2)


@pytest.fixture(scope="session")
def sd2_file(request: pytest.FixtureRequest, sd2_model_dir: Path) -> Path:
    """SD 2.1 768-v as one float16 file (2.6 GB), made to be detected as v-prediction (models_sd2.py)."""
    return built(request, sd2_model_dir / "sd21-768-v.safetensors", models_sd2.write_sd2_single_file)


@pytest.fixture(scope="session")
def sd2_folder(request: pytest.FixtureRequest, sd2_model_dir: Path) -> Path:
    """The same SD 2.1 768-v as a float16 diffusers folder (2.6 GB)."""
    return built(request, sd2_model_dir / "sd21-768-v-diffusers", models_sd2.write_sd2_diffusers)


@pytest.fixture(scope="session")
def generator(sd15_file: Path) -> sdcpp.Generator:
    """One Generator on the single-file model, shared by every test that only generates.

    It runs on SDCPP_TEST_DEVICE (default "auto": the GPU of a CUDA or Metal build, else the CPU).
    """
    with sdcpp.Generator(sd15_file, device=os.environ.get("SDCPP_TEST_DEVICE", "auto")) as gen:
        yield gen
