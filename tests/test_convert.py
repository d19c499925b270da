"""sdcpp.convert: GGUF in every weight type the engine offers; f16 -> q8_0 -> load -> generate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp import _core
from sdcpp._headers import read_header

from .models import write_safetensors

# Rows of 256 fit every block size (32 and 256).
SMALL = {
    "model.diffusion_model.input_blocks.1.1.proj_in.weight": np.linspace(-1, 1, 64 * 256, dtype=np.float32).reshape(64, 256),
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight": np.full((64, 256), 0.5, np.float16),
    "model.diffusion_model.input_blocks.1.1.proj_in.bias": np.zeros(64, np.float32),
}
PROJ, ATTN = list(SMALL)[:2]


@pytest.fixture
def small(tmp_path: Path) -> Path:
    write_safetensors(tmp_path / "small.safetensors", SMALL)
    return tmp_path / "small.safetensors"


def _types(path: Path) -> dict[str, str]:
    return {t.name: t.dtype for t in read_header(path).tensors}


@pytest.mark.parametrize("weight_type", _core.weight_types())
def test_every_weight_type(small: Path, weight_type: str) -> None:
    out = sdcpp.convert(small, small.with_name(f"{weight_type}.gguf"), weight_type)
    assert _types(out) == {PROJ: weight_type, ATTN: weight_type, list(SMALL)[2]: "f32"}


@pytest.mark.parametrize("rules", ["attn=q4_0,proj=q5_K", {"attn": "q4_0", "proj": "q5_K"}], ids=["string", "dict"])
def test_rules_override_per_tensor(small: Path, rules) -> None:
    out = sdcpp.convert(small, small.with_name("mixed.gguf"), "q8_0", rules)
    assert _types(out) == {PROJ: "q5_K", ATTN: "q4_0", list(SMALL)[2]: "f32"}


def test_progress_reaches_every_tensor(small: Path) -> None:
    calls = []
    sdcpp.convert(small, small.with_name("p.gguf"), progress=lambda done, total, s: calls.append((done, total)))
    assert calls and calls[-1] == (3, 3)


def test_refuses_to_overwrite_unless_asked(small: Path) -> None:
    out = small.with_name("o.gguf")
    out.write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="overwrite=True") as e:
        sdcpp.convert(small, out)
    assert isinstance(e.value, sdcpp.SdcppError)
    assert out.read_bytes() == b"keep"
    sdcpp.convert(small, out, overwrite=True)
    assert _types(out)[PROJ] == "q8_0"


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"weight_type": "q8_1"}, r"weight_type: unknown weight type 'q8_1'; one of f32, f16, q4_0"),
        ({"weight_type": "int4"}, "q8_0"),
        ({"rules": "attn=q3"}, r"rules\['attn'\]: unknown weight type 'q3'"),
        ({"rules": "attn"}, "not 'regex=type"),
        ({"rules": {"a,b": "q8_0"}}, "cannot contain"),
        ({"rules": "(attn=q8_0"}, "not a regular expression"),
    ],
)
def test_bad_arguments_name_the_valid_ones(small: Path, kwargs: dict, problem: str) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=problem):
        sdcpp.convert(small, small.with_name("x.gguf"), **kwargs)
    assert not small.with_name("x.gguf").exists()


def test_engine_failure_leaves_no_file(small: Path) -> None:
    out = small.with_name("q.safetensors")  # the engine writes only float types as safetensors
    with pytest.raises(sdcpp.ModelLoadError, match="could not convert"):
        sdcpp.convert(small, out, "q8_0")
    assert list(small.parent.iterdir()) == [small]


def test_command_line(small: Path) -> None:
    cmd = [sys.executable, "-m", "sdcpp", "convert", str(small), str(small.with_name("c.gguf")), "--type", "q4_K"]
    subprocess.run(cmd, check=True, capture_output=True)
    assert _types(small.with_name("c.gguf"))[PROJ] == "q4_K"
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 1 and "overwrite=True" in again.stderr


KERNEL = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"


@pytest.mark.parametrize("quantize_kernels, expected", [(True, ("q8_0", (64, 32 * 3 * 3))), (False, ("f16", (64, 32, 3, 3)))])
def test_kernels_are_quantized_flattened_unless_the_file_is_to_be_shared(tmp_path: Path, quantize_kernels: bool,
                                                                         expected: tuple) -> None:
    # Engine patch 0042: a flattened quantized kernel is read by sdcpp's engine only (patch 0032).
    src = tmp_path / "conv.safetensors"
    write_safetensors(src, {KERNEL: np.full((64, 32, 3, 3), 0.25, np.float16), **SMALL})
    out = sdcpp.convert(src, tmp_path / "out.gguf", "q8_0", quantize_kernels=quantize_kernels)
    kernel = next(t for t in read_header(out).tensors if t.name == KERNEL)
    assert (kernel.dtype, kernel.shape) == expected
    assert _types(out)[PROJ] == "q8_0"  # the matrices are quantized either way


def test_command_line_keeps_kernels_when_asked(tmp_path: Path) -> None:
    src = tmp_path / "conv.safetensors"
    write_safetensors(src, {KERNEL: np.full((64, 32, 3, 3), 0.25, np.float16)})
    subprocess.run([sys.executable, "-m", "sdcpp", "convert", str(src), str(tmp_path / "c.gguf"), "--no-quantize-kernels"],
                   check=True, capture_output=True)
    assert _types(tmp_path / "c.gguf") == {KERNEL: "f16"}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


# q8_0 against f16 on the random-weight SD1.5, 64x64, 2 steps: measured 33.3 dB with the convolution
# kernels quantized too (38.3 dB before patch 0032, with them in f16; docs/inspect-convert.md).
Q8_PSNR_DB = 30


def test_q8_0_gguf_loads_and_draws_the_f16_image(generator: sdcpp.Generator, sd15_file: Path, tmp_path: Path) -> None:
    out = sdcpp.convert(sd15_file, tmp_path / "sd15-q8_0.gguf", "q8_0")
    info = sdcpp.inspect(out)
    assert (info.format, info.family, info.missing) == ("gguf", "SD 1.x", [])
    # 605 tensors, against 440 before: the 2-d weights and, flattened to
    # [OC, IC*KH*KW] by patch 0032, every convolution kernel whose flattened rows are whole 32-blocks
    # (all but the first and last: 3 or 4 channels); 1.17 GB against 2.13 GB (1.80 GB without the kernels).
    assert info.dtypes == {"f16": 525, "q8_0": 605}
    assert info.file_size < 0.56 * sd15_file.stat().st_size
    kernel = next(t for t in read_header(out).tensors if t.name == KERNEL)
    assert (kernel.dtype, kernel.shape) == ("q8_0", (320, 320 * 3 * 3))
    settings = dict(width=64, height=64, steps=2, seed=7)
    reference = np.asarray(generator.generate("a lighthouse at dusk", **settings)[0])
    with sdcpp.Generator(out, device=generator.device) as gen:
        # the engine holds the quantized kernels as they are (it made every Conv2d weight f16 before 0032)
        assert gen.family == "SD 1.x" and gen.weight_types["diffusion"]["q8_0"] == 388
        image = np.asarray(gen.generate("a lighthouse at dusk", **settings)[0])
    assert image.std() > 1
    assert not np.array_equal(image, reference)  # the weights did change
    psnr = _psnr(image, reference)
    assert psnr > Q8_PSNR_DB, f"{psnr:.1f} dB"
