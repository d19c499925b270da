"""sdcpp.Upscaler: ESRGAN models upscale by their factor, agree with a reference RRDBNet, tile within a
bound, refuse bad input and files with clear errors; and ``sdcpp upscale`` on the command line."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sdcpp

from . import models_upscale
from .conftest import ticks_while
from .models_upscale import esrgan_dir  # noqa: F401 (a fixture)

_RNG = np.random.default_rng(0)
NOISE = _RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8)  # not square: a swapped width and height shows


@pytest.fixture(scope="module")
def x4(esrgan_dir: Path) -> sdcpp.Upscaler:
    with sdcpp.Upscaler(esrgan_dir / "x4.safetensors", device="cpu") as upscaler:
        yield upscaler


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("name, factor, seed", [("x4", 4, 0), ("x2", 2, 1)])
def test_output_is_the_reference_rrdbnet_at_factor_times_the_size(esrgan_dir: Path, name: str, factor: int,
                                                                   seed: int) -> None:
    """Both layouts the engine reads (BasicSR names at 4x, ESRGAN's model.N names at 2x) compute the
    network BasicSR defines: a float64 torch RRDBNet on the same float16 weights, within one level of 255."""
    pytest.importorskip("torch")
    with sdcpp.Upscaler(esrgan_dir / f"{name}.safetensors", device="cpu") as upscaler:
        assert upscaler.factor == factor
        out = upscaler.upscale(Image.fromarray(NOISE))
    assert (out.mode, out.size) == ("RGB", (48 * factor, 40 * factor))
    reference = models_upscale.reference(models_upscale.rrdbnet(factor, seed=seed), factor, NOISE)
    expected = np.clip(reference * 255, 0, 255).round()
    error = np.abs(pixels(out) - expected)
    # measured: at most 1, 0.8% of the values (float16 weights and activations in the engine's convolutions)
    assert error.max() <= 1 and error.mean() < 0.05


def test_output_is_not_a_resize_and_is_the_same_every_time(x4: sdcpp.Upscaler) -> None:
    out = pixels(x4.upscale(NOISE))
    for resample in (Image.NEAREST, Image.BICUBIC, Image.LANCZOS):
        plain = pixels(Image.fromarray(NOISE).resize((192, 160), resample))
        assert np.abs(out - plain).mean() > 20  # measured: 55 against bicubic
    np.testing.assert_array_equal(pixels(x4.upscale(Image.fromarray(NOISE))), out)
    np.testing.assert_array_equal(pixels(x4.upscale(NOISE, factor=4)), out)


def test_grayscale_and_palette_images_are_upscaled_as_rgb(x4: sdcpp.Upscaler) -> None:
    gray = Image.fromarray(NOISE).convert("L")
    np.testing.assert_array_equal(pixels(x4.upscale(gray)), pixels(x4.upscale(gray.convert("RGB"))))
    palette = Image.fromarray(NOISE).convert("P")
    np.testing.assert_array_equal(pixels(x4.upscale(palette)), pixels(x4.upscale(palette.convert("RGB"))))


@pytest.mark.parametrize("tile_size, max_error, mean_error", [(32, 2, 0.1), (16, 20, 1.5)])
def test_tiles_agree_with_one_pass(esrgan_dir: Path, tile_size: int, max_error: int, mean_error: float) -> None:
    """64x48 in one pass (tile 128) against overlapping tiles blended at their seams. Measured: tiles of
    32 differ by at most 1 level (mean 0.016); tiles of 16, within the network's reach of the seams,
    by up to 12 (mean 0.62)."""
    image = _RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    outputs = []
    for size in (128, tile_size):
        with sdcpp.Upscaler(esrgan_dir / "x4.safetensors", device="cpu", tile_size=size) as upscaler:
            outputs.append(pixels(upscaler.upscale(image)))
    error = np.abs(outputs[0] - outputs[1])
    assert error.max() <= max_error and error.mean() < mean_error


_HUGE = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (40_000, 40_000, 3))  # no memory behind it


@pytest.mark.parametrize(
    "image, kwargs, message",
    [
        (Image.new("RGBA", (8, 8)), {}, r"^image: PIL mode 'RGBA' is not accepted .* image\.convert\('RGB'\)"),
        (np.zeros((8, 8), np.uint8), {}, r"^image: must be a PIL image or a uint8 array of shape \(height, width, 3\)"),
        (np.zeros((8, 8, 3), np.float32), {}, r"^image: must be uint8 pixels of shape \(height, width, 3\), not float32"),
        ([[0, 0, 0]], {}, r"^image: must be a PIL image or a uint8 array .*, not list"),
        (np.zeros((0, 8, 3), np.uint8), {}, r"^image: is empty \(8x0 pixels\)"),
        (_HUGE, {}, r"^image: upscaling 40000x40000 to 160000x160000 needs about 3\d\d\.\d GiB"),
        (NOISE, {"factor": 2}, r"^factor: this model upscales by 4 only, not 2; resize the result"),
        (NOISE, {"factor": 4.0}, r"^factor: this model upscales by 4 only, not 4\.0"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(x4: sdcpp.Upscaler, image, kwargs: dict, message: str) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=message):
        x4.upscale(image, **kwargs)


def test_bad_files_raise_load_errors(esrgan_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(sdcpp.ModelNotFoundError, match=r"^model: no such file"):
        sdcpp.Upscaler(tmp_path / "missing.safetensors")
    with pytest.raises(sdcpp.ModelLoadError, match=r"^model: .* is a folder; give the ESRGAN model's file"):
        sdcpp.Upscaler(tmp_path)
    (tmp_path / "noise.safetensors").write_bytes(_RNG.bytes(1000))
    with pytest.raises(sdcpp.ModelLoadError, match=r"^model: "):
        sdcpp.Upscaler(tmp_path / "noise.safetensors")
    with pytest.raises(sdcpp.ModelLoadError, match=r"(?s)wrong shape.*looks like Real-ESRGAN x2plus"):
        sdcpp.Upscaler(esrgan_dir / "x2plus.safetensors", device="cpu")
    # Not an RRDBNet: the engine finds none of the tensors it needs.
    models_upscale.write_safetensors(tmp_path / "other.safetensors", {"linear.weight": np.zeros((4, 4), np.float16)})
    with pytest.raises(sdcpp.ModelLoadError, match=r"^the engine could not load the ESRGAN model"):
        sdcpp.Upscaler(tmp_path / "other.safetensors", device="cpu")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"tile_size": 8}, sdcpp.InvalidArgumentError, r"^tile_size: must be an integer from 16 to 1024, not 8"),
        ({"threads": 0}, sdcpp.InvalidArgumentError, r"^threads: must be a positive integer or None, not 0"),
        ({"device": "cuda:7"}, sdcpp.DeviceError, r"^device 'cuda:7' is not available in this build"),
    ],
)
def test_bad_options_are_refused(esrgan_dir: Path, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        sdcpp.Upscaler(esrgan_dir / "x4.safetensors", **kwargs)


def test_closed_upscaler_raises_and_close_is_idempotent(esrgan_dir: Path) -> None:
    with sdcpp.Upscaler(esrgan_dir / "x2.safetensors", device="cpu") as upscaler:
        assert not upscaler.closed and "factor=2" in repr(upscaler)
    assert upscaler.closed and repr(upscaler).endswith("(closed))")
    upscaler.close()
    with pytest.raises(ValueError, match="the Upscaler is closed"):
        upscaler.upscale(NOISE)


def test_the_gil_is_released_while_the_engine_upscales(x4: sdcpp.Upscaler) -> None:
    ticks, seconds = ticks_while(lambda: x4.upscale(_RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    assert ticks >= 0.5 * seconds / 0.01, f"only {ticks} ticks in {seconds:.2f} s: the GIL was held"


def test_logs_go_to_the_upscalers_logger_and_a_handler_cannot_reenter(
    esrgan_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sdcpp"):
        upscaler = sdcpp.Upscaler(esrgan_dir / "x2.safetensors", device="cpu", name="mine")
    assert any(r.name == "sdcpp.mine" and "esrgan model loaded with scale=2" in r.getMessage() for r in caplog.records)
    refused: list[BaseException] = []

    class Reenter(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not refused:
                try:
                    upscaler.upscale(NOISE)
                except RuntimeError as e:
                    refused.append(e)

    handler = Reenter(logging.INFO)
    upscaler.logger.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="sdcpp"):
            assert upscaler.upscale(NOISE).size == (96, 80)
    finally:
        upscaler.logger.removeHandler(handler)
        upscaler.close()
    assert refused and "Upscaler.upscale() cannot be used from a progress callback or log handler" in str(refused[0])


def test_command_line_upscales_a_file(esrgan_dir: Path, tmp_path: Path) -> None:
    Image.fromarray(NOISE).convert("RGBA").save(tmp_path / "in.png")  # alpha is dropped, as the help says
    command = [sys.executable, "-m", "sdcpp", "upscale", str(esrgan_dir / "x4.safetensors"), str(tmp_path / "in.png"),
               "-o", str(tmp_path / "out.png"), "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{tmp_path / 'out.png'} 192x160"
    with Image.open(tmp_path / "out.png") as out, sdcpp.Upscaler(esrgan_dir / "x4.safetensors", device="cpu") as x4:
        np.testing.assert_array_equal(pixels(out), pixels(x4.upscale(NOISE)))
    bad = subprocess.run(command[:5] + [str(esrgan_dir / "x4.safetensors")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "sdcpp: error: image: cannot read" in bad.stderr  # 1: every sdcpp error
