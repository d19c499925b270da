"""ggml's arange and timestep_embedding (and the self-test kernels) against numpy, on the test device."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import sdcpp
from sdcpp import _core, ops
from sdcpp._core import _testing
from sdcpp.devices import resolve_device
from sdcpp.doctor import GPU_TOLERANCE, TENSOR_API_PRODUCTS
from sdcpp.system import packed_cpu_product

from .test_ops_fuzz import conv_2d_reference, group_norm_reference


def conv_inputs(seed: int, n: int, c: int, h: int, w: int, out: int, k: int, weight_dtype: str = "float32"):
    """A random image batch and kernels; float16 kernels hold values float16 stores exactly."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((out, c, k, k)).astype(np.float32)
    if weight_dtype == "float16":
        weight = weight.astype(np.float16).astype(np.float32)
    return x, weight


DEVICE = os.environ.get("SDCPP_TEST_DEVICE", "auto")
# float32 sin/cos of arguments up to ~1000 rad: a few float32 ulps of the argument.
TOL = 2e-4


def timestep_embedding_reference(t: np.ndarray, dim: int, max_period: float = 10000) -> np.ndarray:
    """Written from the definition: [cos(t f_j), sin(t f_j)], f_j = exp(-ln(P) j / half), odd dim padded with 0."""
    half = dim // 2
    out = np.zeros((len(t), dim))
    for i, ti in enumerate(np.asarray(t, np.float64)):
        for j in range(half):
            f = math.exp(-math.log(max_period) * j / half)
            out[i, j] = math.cos(ti * f)
            out[i, j + half] = math.sin(ti * f)
    return out


@pytest.mark.parametrize("dim", [320, 1280, 256, 7, 1, 2, 321])
@pytest.mark.parametrize("timesteps", [np.arange(0, 1000, 37, dtype=np.float32), np.array([0.5, 1.25, 999.9, 0.0], np.float32)])
def test_timestep_embedding_matches_its_definition(dim: int, timesteps: np.ndarray) -> None:
    got = ops.timestep_embedding(timesteps, dim, device=DEVICE)
    want = timestep_embedding_reference(timesteps, dim)
    assert got.shape == (len(timesteps), dim) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    if dim % 2:
        assert np.all(got[:, -1] == 0), "odd dim: the last column is zero padding"


def test_timestep_embedding_max_period() -> None:
    t = np.array([3.0, 400.0], np.float32)
    np.testing.assert_allclose(
        ops.timestep_embedding(t, 64, max_period=100, device=DEVICE), timestep_embedding_reference(t, 64, 100), atol=TOL
    )


@pytest.mark.parametrize("start, stop, step", [(0, 10, 1), (-3, 5, 0.5), (10, -2, -1.5), (0.25, 1.0, 0.125), (5, 5, 1)])
def test_arange_matches_numpy(start: float, stop: float, step: float) -> None:
    got = ops.arange(start, stop, step, device=DEVICE)
    want = np.arange(start, stop, step, dtype=np.float64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_arange_arguments_that_would_abort_ggml_are_refused() -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match="^step: must not be 0"):
        ops.arange(0, 1, 0)
    with pytest.raises(sdcpp.InvalidArgumentError, match="^stop: must be a finite number"):
        ops.arange(0, math.inf, 1)
    with pytest.raises(sdcpp.InvalidArgumentError, match="^timesteps: must not be empty"):
        ops.timestep_embedding([], 8)


F = np.ones  # a float64 array of a shape, converted to float32 by the op
HOSTILE = [
    # (op, arguments, the start of the error message), each refused before ggml sees it. Unchecked,
    # the mismatched shapes ended the process (GGML_ASSERT), as did stride or groups 0 (a division
    # by zero) and the huge sizes; the rest gave wrong results or a TypeError without the argument.
    (ops.mul_mat, (F((3, 4)), F((2, 5))), "b: has 5 columns but a has 4; b @ a.T needs a (m, k) and b (n, k)"),
    (ops.mul_mat, (F((2, 3, 4)), F((2, 4))), "a: must have 2 dimensions (m, k), not shape (2, 3, 4)"),
    (ops.mul_mat, (F(4), F(4)), "a: must have 2 dimensions"),
    (ops.mul_mat, (F((0, 4)), F((2, 4))), "a: must not be empty, not of shape (0, 4)"),
    (ops.mul_mat, (np.ones((2, 2), complex), F((2, 2))), "a: must be an array of real numbers, not of dtype complex128"),
    (ops.mul_mat, ([[1, 2], [3]], F((2, 2))), "a: must be an array of real numbers ("),
    (ops.mul_mat, (np.array([["x"]]), F((1, 1))), "a: must be an array of real numbers, not of dtype <U1"),
    (ops.mul_mat, (F((2**16, 1)), F((2**16, 1))), "mul_mat: the inputs make a tensor of shape (65536, 65536)"),
    (ops.conv_2d, (F((1, 3, 8, 8)), F((4, 2, 3, 3))), "weight: has 2 input channels but x has 3; weight must be (out, 3,"),
    (ops.conv_2d, (F((3, 8, 8)), F((4, 3, 3, 3))), "x: must have 4 dimensions (n, c, h, w)"),
    (ops.conv_2d, (F((1, 3, 8, 8)), F((3, 3, 3))), "weight: must have 4 dimensions (out, c, kh, kw)"),
    (ops.conv_2d, (F((1, 3, 2, 2)), F((4, 3, 3, 3))), "weight: the 3x3 kernel is larger than x padded to 2x2; use"),
    (ops.conv_2d, (F((1, 3, 8, 8)), F((4, 3, 3, 3)), 0), "stride: must be an integer from 1 to 65536, not 0"),
    (ops.conv_2d, (F((1, 3, 8, 8)), F((4, 3, 3, 3)), 2**31), "stride: must be an integer from 1 to 65536"),
    (ops.conv_2d, (F((1, 3, 8, 8)), F((4, 3, 3, 3)), 1.5), "stride: must be an integer"),
    (ops.conv_2d, (F((1, 3, 8, 8)), F((4, 3, 3, 3)), 1, -1), "padding: must be an integer from 0 to 65536, not -1"),
    (ops.conv_2d, (F((1, 3, 8, 8)), F((4, 3, 3, 3)), 1, 2**30), "padding: must be an integer from 0 to 65536"),
    (ops.conv_2d, (F((1, 1, 1, 1)), F((1, 1, 1, 1)), 1, 2**15), "conv_2d: the inputs make a tensor of shape (1, 1, 65537,"),
    (ops.conv_2d, (F((1, 3, 8, 8)), F((4, 3, 0, 3))), "weight: must not be empty"),
    (ops.group_norm, (F((1, 6, 4, 4)), 4), "groups: must divide the 6 channels of x, not 4"),
    (ops.group_norm, (F((1, 6, 4, 4)), 12), "groups: must be an integer from 1 to 6, not 12"),
    (ops.group_norm, (F((1, 6, 4, 4)), 0), "groups: must be an integer from 1 to 6, not 0"),
    (ops.group_norm, (F((1, 6, 4, 4)), True), "groups: must be an integer"),
    (ops.group_norm, (F((6, 4, 4)), 2), "x: must have 4 dimensions (n, c, h, w)"),
    (ops.group_norm, (F((1, 6, 4, 4)), 2, math.nan), "eps: must be a finite number >= 0, not nan"),
    (ops.group_norm, (F((1, 6, 4, 4)), 2, -1e-6), "eps: must be a finite number >= 0"),
    (ops.attention, (F((4, 8)), F((5, 7)), F((5, 8))), "k: has head dimension 7 but q has 8; they must match"),
    (ops.attention, (F((4, 8)), F((5, 8)), F((6, 8))), "v: has 6 rows but k has 5; each key needs one value"),
    (ops.attention, (F((2, 4, 8)), F((5, 8)), F((5, 8))), "q: must have 2 dimensions (n, d)"),
    (ops.attention, (F((4, 8)), F((0, 8)), F((0, 8))), "k: must not be empty"),
    (ops.arange, (-1e308, 1e308, 1e-300), "step: the range has inf elements, more than 2147483647"),
    (ops.timestep_embedding, (F(3), 2**31), "dim: must be an integer from 1 to 2147483647"),
    (ops.timestep_embedding, (F(3), 8, 0), "max_period: must be an integer from 1"),
    (ops.timestep_embedding, (F(2**16), 2**16), "timestep_embedding: the inputs make a tensor of shape (65536, 65536"),
]


@pytest.mark.parametrize("op, args, message", HOSTILE, ids=[f"{op.__name__}-{i}" for i, (op, *_) in enumerate(HOSTILE)])
def test_shapes_that_would_abort_ggml_are_refused_naming_the_argument(op, args, message: str) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match="^" + re.escape(message)):
        op(*args, device=DEVICE)


def test_inputs_of_any_real_dtype_are_taken_as_float32_and_nan_propagates() -> None:
    a = np.arange(6, dtype=np.int64).reshape(2, 3)
    np.testing.assert_allclose(ops.mul_mat(a, [[1.0, 0, 0]], device=DEVICE), [[0, 3]])
    nan = ops.mul_mat(np.array([[np.nan, 1]]), np.ones((2, 2)), device=DEVICE)
    assert nan.shape == (2, 1) and np.isnan(nan).all()
    big = ops.mul_mat(np.array([[1e300]]), np.ones((1, 1)), device=DEVICE)  # beyond float32: inf, like a cast
    assert np.isinf(big).all()


def test_self_test_passes_on_every_device() -> None:
    checks = sdcpp.self_test()
    assert {c.op for c in checks} == {
        "arange", "timestep_embedding", "conv_2d", "mul_mat", "group_norm", "attention", "attention_77",
        "mul_mat_f16 320x64", "mul_mat_f16 704x77", "linear", "layer_norm",
    }
    failed = [c for c in checks if not c.passed]
    assert not failed, failed
    assert {c.device for c in checks} == {d["name"] for d in sdcpp.system_info()["devices"]}


def test_the_tensor_api_products_take_ggml_metals_matrix_matrix_kernel() -> None:
    # ggml-metal-ops.cpp: kernel_mul_mm (the tensor API on M5 and later) for k >= 64 and n > 8 rows.
    assert TENSOR_API_PRODUCTS
    for m, k, n in TENSOR_API_PRODUCTS.values():
        assert m % 128 == 64 and k >= 64 and n > 8


def test_the_tensor_api_products_are_checked_against_numpy_on_the_cpu() -> None:
    checks = {c.op: c for c in sdcpp.self_test("cpu")}
    for op in (*TENSOR_API_PRODUCTS, "attention_77"):
        assert checks[op].reference == "numpy" and checks[op].passed, checks[op]


def test_a_product_missing_its_last_64_columns_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ops.mul_mat

    def blank_tail(a: np.ndarray, b: np.ndarray, **kwargs: str) -> np.ndarray:
        out = real(a, b, **kwargs)
        out[:, -64:] = 0  # what a tile store that lands past the output leaves behind
        return out

    monkeypatch.setattr(ops, "mul_mat", blank_tail)
    checks = {c.op: c for c in sdcpp.self_test("cpu")}
    assert not any(checks[op].passed for op in TENSOR_API_PRODUCTS)


def test_mul_mat_with_float16_weights() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((320, 96)).astype(np.float32)
    b = rng.standard_normal((20, 96)).astype(np.float32)
    got = ops.mul_mat(a, b, a_dtype="float16", device=DEVICE)
    half = b.astype(np.float16).astype(np.float64) @ a.astype(np.float16).astype(np.float64).T
    assert got.shape == (20, 320)
    assert np.max(np.abs(got - half)) / np.max(np.abs(half)) < (1e-4 if resolve_device(DEVICE) == "CPU" else GPU_TOLERANCE)
    # float16 storage is what the comparison above sees: float32 weights give another result.
    assert np.max(np.abs(got - ops.mul_mat(a, b, device="cpu"))) > 1e-3
    with pytest.raises(sdcpp.InvalidArgumentError, match="^a_dtype: must be 'float32' or 'float16'"):
        ops.mul_mat(a, b, a_dtype="bfloat16")


def test_doctor_command_prints_devices_and_checks() -> None:
    out = subprocess.run([sys.executable, "-m", "sdcpp", "doctor"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "CPU" in out.stdout and "timestep_embedding" in out.stdout and "mul_mat_f16 320x64" in out.stdout
    if sys.platform != "darwin":
        assert "Metal tensor API: not applicable (not macOS)" in out.stdout
    assert out.stdout.strip().endswith("0 failed")


def test_unknown_device_for_an_op() -> None:
    with pytest.raises(sdcpp.DeviceError, match="'npu' is not available"):
        ops.arange(0, 1, 1, device="npu")


def test_an_unsupported_op_raises_naming_op_device_and_way_out(generator: sdcpp.Generator) -> None:
    # 0004-check-ops-before-compute.patch: every graph is checked against its backend; the hook makes
    # every backend refuse TIMESTEP_EMBEDDING, as Metal once did.
    _testing.refuse_op("TIMESTEP_EMBEDDING")
    try:
        with pytest.raises(sdcpp.UnsupportedOperation) as e:
            generator.generate("x", width=64, height=64, steps=1, seed=1)
    finally:
        _testing.refuse_op(None)
    assert e.value.op == "TIMESTEP_EMBEDDING" and e.value.device == generator.device
    assert "device='cpu'" in str(e.value) and isinstance(e.value, sdcpp.GenerationError)
    assert generator.generate("x", width=64, height=64, steps=1, seed=1)[0].size == (64, 64)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_2d_against_its_definition_across_row_blocks(stride: int) -> None:
    # Engine patch 0012 rewrote ggml's CPU im2col: rows split across threads, 64 output pixels at a
    # time. 150 columns cross two block edges; 37 rows do not divide between threads.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 37, 150)).astype(np.float32)
    w = rng.standard_normal((5, 6, 3, 3)).astype(np.float32)
    for device in {"cpu", DEVICE}:
        got = ops.conv_2d(x[None], w, stride=stride, padding=1, device=device)[0]
        want = conv_2d_reference(x[None], w, stride, 1)[0]
        assert got.shape == want.shape
        # GPUs may multiply float32 in reduced precision: 3.1e-4 measured on the H100 (the self-test's bound).
        tol = TOL if resolve_device(device) == "CPU" else GPU_TOLERANCE
        assert np.abs(got - want).max() <= tol * np.abs(want).max(), device


@pytest.mark.parametrize(
    "n, c, h, w, out, k, stride, padding",
    [(2, 33, 5, 70, 4, 3, 1, 1), (1, 64, 9, 65, 3, 3, 2, 1), (1, 3, 6, 35, 5, 1, 1, 0), (2, 5, 7, 33, 2, 4, 2, 2)],
)
def test_conv_2d_against_its_definition_across_im2col_tiles(n, c, h, w, out, k, stride, padding) -> None:
    # Engine patch 0053: CUDA's im2col makes its columns in tiles of 32 output columns by 32 channels.
    # 33 and 65 channels or columns leave a tile of one; a batch of 2 crosses whole images.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((out, c, k, k)).astype(np.float32)
    got = ops.conv_2d(x, weight, stride=stride, padding=padding, device=DEVICE)
    want = conv_2d_reference(x, weight, stride, padding)
    assert got.shape == want.shape
    tol = TOL if resolve_device(DEVICE) == "CPU" else GPU_TOLERANCE
    assert np.abs(got - want).max() <= tol * np.abs(want).max()


@contextlib.contextmanager
def _cols_bound(nbytes: int):
    """ggml_conv_2d's bound on the im2col matrix it makes at once for one image (engine patch 0059)."""
    old = _testing.set_conv_2d_max_cols_bytes(nbytes)
    try:
        yield
    finally:
        _testing.set_conv_2d_max_cols_bytes(old)


@pytest.mark.parametrize("weight_dtype", ["float32", "float16"])
@pytest.mark.parametrize(
    "c, h, w, out, k, stride, padding",
    [(8, 37, 29, 5, 3, 1, 1), (6, 40, 23, 4, 3, 2, 1), (4, 33, 17, 3, 5, 1, 2), (4, 20, 20, 3, 3, 1, 0),
     (5, 19, 21, 2, 7, 2, 3), (3, 9, 30, 2, 3, 1, 1)],
)
def test_conv_2d_of_one_image_by_bands_of_rows(c, h, w, out, k, stride, padding, weight_dtype) -> None:
    # Engine patch 0059: for one image, ggml_conv_2d makes im2col's matrix three output rows at a time
    # here. The first band pads its top through im2col, a band past the input's end pads its bottom;
    # 7x7 with padding 3 and stride 2 makes a band start at the second output row.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((out, c, k, k)).astype(np.float32)
    ow = (w + 2 * padding - k) // stride + 1
    row_bytes = ow * c * k * k * (2 if weight_dtype == "float16" else 4)
    whole = ops.conv_2d(x, weight, stride=stride, padding=padding, weight_dtype=weight_dtype, method="im2col", device=DEVICE)
    with _cols_bound(3 * row_bytes):
        banded = ops.conv_2d(x, weight, stride=stride, padding=padding, weight_dtype=weight_dtype, method="im2col",
                             device=DEVICE)
    if weight_dtype == "float16":  # im2col's columns are float16 too
        x, weight = x.astype(np.float16).astype(np.float32), weight.astype(np.float16).astype(np.float32)
    want = conv_2d_reference(x, weight, stride, padding)
    assert banded.shape == want.shape
    tol = TOL if resolve_device(DEVICE) == "CPU" else GPU_TOLERANCE
    assert np.abs(banded - want).max() <= tol * np.abs(want).max()
    assert np.abs(banded - whole).max() <= tol * np.abs(want).max()


def test_conv_2d_of_one_image_reserves_a_band_of_columns() -> None:
    # Engine patch 0059, why: a 512x512 VAE decode's largest im2col matrix was 1.2 GB, most of the
    # decode's GPU memory. Here 32 channels at 64x64 make 2.4 MB of float16 columns; in bands of at
    # most 256 KiB the graph's reserved memory is under half.
    x, w = [1, 32, 64, 64], [32, 32, 3, 3]
    whole = _testing.conv_2d_work_bytes(x, w, 1, 1, resolve_device(DEVICE))
    with _cols_bound(256 << 10):
        banded = _testing.conv_2d_work_bytes(x, w, 1, 1, resolve_device(DEVICE))
    assert whole > 64 * 64 * 288 * 2
    assert banded < whole / 2


@pytest.mark.parametrize("n, c, h, w, groups, offset", [(2, 8, 130, 130, 2, 0.0), (1, 4, 129, 128, 1, 100.0), (1, 32, 8, 8, 32, 0.0)])
def test_group_norm_against_its_definition_across_chunks(n, c, h, w, groups, offset) -> None:
    # Engine patch 0054: on CUDA a group of more than 16384 values is split into chunks over many
    # blocks (67600 values: four whole chunks and a part); an offset of 100 against a spread of 1 is
    # where summing squares instead of squared deviations would lose the variance. 64 values a group
    # stay on the one-block kernel. The chunks' sums are added in a fixed order: the same input gives
    # the same bits twice.
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((n, c, h, w)) + offset).astype(np.float32)
    got = ops.group_norm(x, groups, device=DEVICE)
    want = group_norm_reference(x, groups, 1e-6)
    tol = TOL if resolve_device(DEVICE) == "CPU" else GPU_TOLERANCE
    assert np.abs(got - want).max() <= tol * np.abs(want).max()
    assert np.array_equal(got, ops.group_norm(x, groups, device=DEVICE))


# NVIDIA's data-center GPUs, whose tensor cores accumulate in float32 at full rate (engine patch 0061).
DATA_CENTER_GPUS = ("A100", "A800", "H100", "H800", "H200", "GH200", "B100", "B200", "GB200")


def _data_center_gpu(device: str) -> bool:
    description = next(d["description"] for d in sdcpp.system_info()["devices"] if d["name"] == device)
    return any(name in description for name in DATA_CENTER_GPUS)


def test_float16_products_accumulate_and_return_float32() -> None:
    # Engine patch 0061: on data-center GPUs cuBLAS now sums float16 operands in float32 and writes
    # float32. Before, it wrote a float16 result, which cannot hold 8192 x 16 = 131072 (its largest
    # value is 65504): inf. CPUs and Metal always accumulate in float32; other NVIDIA GPUs keep
    # float16 (half-rate float32 there).
    device = resolve_device(DEVICE)
    if device.startswith("CUDA") and not _data_center_gpu(device):
        pytest.skip(f"{device} accumulates float16 products in float16")
    a = np.ones((128, 8192), np.float32)
    b = np.full((256, 8192), 16.0, np.float32)
    got = ops.mul_mat(a, b, a_dtype="float16", device=device)
    assert np.array_equal(got, np.full((256, 128), 131072.0, np.float32))


def _linear_inputs(n: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, 320)).astype(np.float32)
    w = rng.standard_normal((192, 320)).astype(np.float32)
    return x, w, 8 * rng.standard_normal(192).astype(np.float32), 8 * rng.standard_normal((n, 192)).astype(np.float32)


@pytest.mark.parametrize("n", [300, 8])
@pytest.mark.parametrize("with_residual", [False, True])
def test_linear_adds_bias_and_residual_to_the_product(n, with_residual) -> None:
    # Engine patch 0063 adds bias and residual inside the cuBLASLt product on data-center GPUs; every
    # device must still give the definition. The bias and residual are large next to the product's
    # rounding, so adding either of them twice, or not at all, fails.
    x, w, b, r = _linear_inputs(n)
    got = ops.linear(x, w, b, r if with_residual else None, device=DEVICE)
    want = x.astype(np.float64) @ w.astype(np.float16).astype(np.float64).T + b + (r if with_residual else 0)
    assert got.shape == (n, 192)
    # float32-exact where the CPU's packed product runs (64 rows and more); else x is rounded to float16.
    exact = resolve_device(DEVICE) == "CPU" and packed_cpu_product() and n >= 64
    assert np.abs(got - want).max() <= (1e-5 if exact else 2e-3) * np.abs(want).max()


def test_linear_layer_is_one_cuda_product_on_data_center_gpus() -> None:
    device = resolve_device(DEVICE)
    if not device.startswith("CUDA") or not _data_center_gpu(device):
        pytest.skip("engine patch 0063 fuses linear layers on NVIDIA's data-center GPUs only")
    x, w, b, r = _linear_inputs(300)
    before = _testing.cuda_fusion_count("linear")
    ops.linear(x, w, b, r, device=device)
    ops.linear(x, w, b, device=device)
    assert _testing.cuda_fusion_count("linear") == before + 2
    # Below 64 rows the product is not fused (at most 16 take ggml's own kernel, which stays faster).
    ops.linear(x[:8], w, b, r[:8], device=device)
    ops.linear(x[:40], w, b, r[:40], device=device)
    assert _testing.cuda_fusion_count("linear") == before + 2


@pytest.mark.parametrize("c", [640, 1280])
@pytest.mark.parametrize("with_bias", [False, True])
def test_layer_norm_scales_and_shifts_each_column(c, with_bias) -> None:
    # Engine patch 0064 runs NORM, MUL and ADD as one CUDA kernel (one warp per row below 1024 columns,
    # 1024 threads above). Offsets and scales far from 0 and 1 make a missed or doubled step visible.
    rng = np.random.default_rng(6)
    x = (3 + 5 * rng.standard_normal((37, c))).astype(np.float32)
    w, b = (2 + rng.standard_normal(c)).astype(np.float32), (4 * rng.standard_normal(c)).astype(np.float32)
    got = ops.layer_norm(x, w, b if with_bias else None, eps=1e-5, device=DEVICE)
    x64 = x.astype(np.float64)
    normed = (x64 - x64.mean(axis=1, keepdims=True)) / np.sqrt(x64.var(axis=1, keepdims=True) + 1e-5)
    want = normed * w + (b if with_bias else 0)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_layer_norm_is_one_cuda_kernel() -> None:
    device = resolve_device(DEVICE)
    if not device.startswith("CUDA"):
        pytest.skip("engine patch 0064 fuses LayerNorm on CUDA")
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((8, 320)), rng.standard_normal(320), rng.standard_normal(320)
    before = _testing.cuda_fusion_count("layer_norm")
    ops.layer_norm(x, w, b, device=device)
    ops.layer_norm(x, w, device=device)
    assert _testing.cuda_fusion_count("layer_norm") == before + 2
    assert _testing.cuda_fusion_count("conv") == -1  # no such fusion


def _attention_inputs(n: int, m: int, d: int = 64) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(7)
    return tuple(rng.standard_normal((rows, d)).astype(np.float32) for rows in (n, m, m))


@pytest.mark.parametrize("m", [512, 77])
def test_flash_attention_computes_attention_over_float16_keys_and_values(m) -> None:
    # Engine patch 0065: on CUDA, 512 keys (whole tiles of 256) take the kernel that loads K and V
    # through the cp.async pipeline, and the prompt's 77 keys the one that checks bounds; both must
    # give the definition over K and V rounded to float16, as the engine rounds them.
    q, k, v = _attention_inputs(300, m)
    got = ops.attention(q, k, v, flash=True, device=DEVICE)
    k16, v16 = (a.astype(np.float16).astype(np.float64) for a in (k, v))
    scores = q.astype(np.float64) @ k16.T / 8
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    want = (p / p.sum(axis=1, keepdims=True)) @ v16
    assert got.shape == (300, 64)
    # 1.3e-6 measured on the CPU; GPU kernels round q and the softmax weights to float16 as well.
    tol = TOL if resolve_device(DEVICE) == "CPU" else GPU_TOLERANCE
    assert np.abs(got - want).max() <= tol * np.abs(want).max()
    # the float32 path differs by the rounding of k and v alone (3.6e-4 on the CPU)
    assert np.abs(got - ops.attention(q, k, v, device=DEVICE)).max() <= max(tol, 1e-3) * np.abs(want).max()


def test_flash_must_be_true_or_false() -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match="^flash: must be True or False, not 'yes'"):
        ops.attention(*_attention_inputs(4, 5, d=8), flash="yes", device=DEVICE)


def test_flash_attention_over_whole_key_tiles_is_pipelined_on_data_center_gpus() -> None:
    device = resolve_device(DEVICE)
    if not device.startswith("CUDA") or not _data_center_gpu(device):
        pytest.skip("engine patch 0065 is a CUDA kernel for GPUs with cp.async, checked on data-center GPUs")
    q, k, v = _attention_inputs(300, 512)
    before = _testing.cuda_fusion_count("flash_attn_pipelined")
    ops.attention(q, k, v, flash=True, device=device)
    assert _testing.cuda_fusion_count("flash_attn_pipelined") == before + 1
    # Not: keys that end inside a tile, 32 queries or fewer (narrower tiles), heads of another size.
    ops.attention(q, k[:77], v[:77], flash=True, device=device)
    ops.attention(q[:32], k, v, flash=True, device=device)
    ops.attention(*_attention_inputs(300, 512, d=128), flash=True, device=device)
    assert _testing.cuda_fusion_count("flash_attn_pipelined") == before + 1


def test_layer_norm_names_the_argument_with_the_wrong_shape() -> None:
    x = np.zeros((4, 8), np.float32)
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^weight: has shape \(7,\), not \(8,\)"):
        ops.layer_norm(x, np.ones(7))
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^bias: has shape \(9,\), not \(8,\)"):
        ops.layer_norm(x, np.ones(8), np.ones(9))
    with pytest.raises(sdcpp.InvalidArgumentError, match="^eps: must be a finite number >= 0"):
        ops.layer_norm(x, np.ones(8), eps=-1.0)


def test_linear_names_the_argument_with_the_wrong_shape() -> None:
    x, w, b, r = _linear_inputs(20)
    with pytest.raises(sdcpp.InvalidArgumentError, match="^weight: has 319 columns but x has 320"):
        ops.linear(x, w[:, :319], b)
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^bias: has shape \(191,\), not \(192,\)"):
        ops.linear(x, w, b[:191])
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^residual: has shape \(20, 191\), not the result's"):
        ops.linear(x, w, b, r[:, :191])


@pytest.mark.parametrize("a_dtype", ["float32", "float16"])
@pytest.mark.parametrize("m, n, k", [(70, 197, 300), (64, 64, 7), (1030, 100, 77), (200, 390, 513), (70, 197, 12000)])
def test_mul_mat_against_its_definition_across_packed_blocks(a_dtype, m, n, k) -> None:
    # Engine patch 0056: on AVX2 CPUs a product with both sides 64 or wider runs packed, in tiles of
    # 16 rows of a by 6 of b (32 by 12 in AVX-512 builds, patch 0067), blocks of up to 192 rows, 256
    # values of k at a time. 70, 197, 1030 and 390 leave partial tiles and blocks for both tiles, 300 and
    # 513 a partial k block, 7 and 77 are not 8-wide; at k = 12000 a block of b is cut to 174 rows (8 MB
    # of panels per thread, patch 0069; 168 with the wide tile).
    rng = np.random.default_rng(2)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float32)
    a_stored = a.astype(np.float16).astype(np.float64) if a_dtype == "float16" else a.astype(np.float64)
    got = ops.mul_mat(a, b, a_dtype=a_dtype, device="cpu")
    want = b.astype(np.float64) @ a_stored.T
    # float32 sums of k products; where tinyBLAS runs instead, float16 a rounds b to float16 too.
    tol = 1e-5 if packed_cpu_product() or a_dtype == "float32" else 2e-3
    assert np.abs(got - want).max() <= tol * np.abs(want).max()


@pytest.mark.parametrize("n, k", [(1, 1280), (2, 245), (3, 77)])
def test_narrow_float16_products_sum_in_float32(n, k) -> None:
    # Products with fewer than 64 columns of activations skip the packed product: ggml rounds the
    # activations to float16 and sums float16 dot products (tinyBLAS where k fits its vectors, else
    # ggml_vec_dot_f16). Engine patch 0068: built for a CPU with AVX512-FP16 those dot products summed
    # in float16 (a convolution 4.4e-4 off on the H200 machine's Xeon); they sum in float32 on every CPU now.
    rng = np.random.default_rng(11)
    a = rng.standard_normal((96, k)).astype(np.float16)
    b = rng.standard_normal((n, k)).astype(np.float16)
    got = ops.mul_mat(a.astype(np.float32), b.astype(np.float32), a_dtype="float16", device="cpu")
    want = b.astype(np.float64) @ a.astype(np.float64).T
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_packed_product_keeps_float32_activations() -> None:
    # With float16 weights tinyBLAS rounds the activations to float16 first (a relative error of
    # about 2e-4); the packed product converts the weights only, so the result is float32-exact.
    if not packed_cpu_product():
        pytest.skip("this build's CPU backend has no packed product (a build without AVX2, or not for x86)")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((128, 320)).astype(np.float32), rng.standard_normal((96, 320)).astype(np.float32)
    got = ops.mul_mat(a, b, a_dtype="float16", device="cpu")
    exact = b.astype(np.float64) @ a.astype(np.float16).astype(np.float64).T
    rounded_b = b.astype(np.float16).astype(np.float64) @ a.astype(np.float16).astype(np.float64).T
    err = np.abs(got - exact).max() / np.abs(exact).max()
    assert err < 1e-6 < np.abs(rounded_b - exact).max() / np.abs(exact).max() / 10


@pytest.mark.parametrize("a_dtype", ["float32", "float16"])
@pytest.mark.parametrize("m, n, k", [(40, 300, 300), (16, 256, 77), (63, 1000, 513), (40, 260, 12000)])
def test_products_with_few_rows_of_a_run_packed_through_the_transpose(a_dtype, m, n, k) -> None:
    # Engine patch 0075: with 16 to 63 rows of a and 256 or more of b (attention's softmax.V with SD 1.x's
    # 40-wide heads) the packed product computes the transpose, b's rows in the tile's long side, and
    # writes it back transposed. 1000 rows of b make several blocks and a partial tile; 63 and 40 rows of a
    # partial tiles of 12 (AVX-512) and 6; k = 513 a partial k block, 12000 a long one. As everywhere in
    # the packed product, float16 a leaves b in float32: tinyBLAS, which ran these before, rounds b to
    # float16 (a relative error of about 2e-4).
    if not packed_cpu_product():
        pytest.skip("this build's CPU backend has no packed product (a build without AVX2, or not for x86)")
    rng = np.random.default_rng(5)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((n, k)).astype(np.float32)
    a_stored = a.astype(np.float16) if a_dtype == "float16" else a
    got = ops.mul_mat(a, b, a_dtype=a_dtype, device="cpu")
    want = b.astype(np.float64) @ a_stored.astype(np.float64).T
    assert got.shape == (n, m)
    assert np.abs(got - want).max() <= 1e-6 * np.abs(want).max()


@pytest.mark.parametrize(
    "op, shape",
    [
        ("mul_mat", (300, 400, 700)),  # m, n, k: three blocks of b; k in three runs of 256
        ("conv_2d", (2, 64, 16, 16, 256)),  # n, c, h, w, out: two 16x16 planes in one run of rows (patch 0071)
        ("conv_2d", (3, 32, 10, 10, 200)),  # 100-position planes: each image its own rows
        ("conv_2d", (2, 64, 4, 4, 256)),  # planes smaller than a tile share it
    ],
)
def test_packed_products_pack_a_once_for_all_threads(op, shape) -> None:
    # Engine patch 0077: A's panels (a product's rows of a, a convolution's image taps) were packed again
    # for every block of b, or by every thread; now the threads pack them once, together, into the node's
    # work buffer, each thread some values of k of some blocks, and the products read them from there.
    # Each output's sum keeps its order, so any number of threads gives the same values.
    if not packed_cpu_product():
        pytest.skip("this build's CPU backend has no packed product (a build without AVX2, or not for x86)")
    rng = np.random.default_rng(12)
    if op == "mul_mat":
        m, n, k = shape
        a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((n, k)).astype(np.float32)
        run = functools.partial(ops.mul_mat, a, b, a_dtype="float16", device="cpu")
        want = b.astype(np.float64) @ a.astype(np.float16).astype(np.float64).T
    else:
        x, weight = conv_inputs(12, *shape, 3, "float16")
        run = functools.partial(ops.conv_2d, x, weight, padding=1, weight_dtype="float16", method="direct", device="cpu")
        want = conv_2d_reference(x, weight, 1, 1)
    results = []
    previous = _testing.set_cpu_op_threads(1)
    try:
        for threads in (1, 3):
            _testing.set_cpu_op_threads(threads)
            before = _testing.cpu_shared_panels_count()
            results.append(run())
            assert _testing.cpu_shared_panels_count() == before + 1
    finally:
        _testing.set_cpu_op_threads(previous)
    assert np.abs(results[0] - want).max() <= 1e-5 * np.abs(want).max()
    assert np.array_equal(results[0], results[1])


@pytest.mark.parametrize("m, shared", [(4000, True), (4100, False)])
def test_a_panels_past_64_mib_are_packed_block_by_block(m, shared) -> None:
    # Engine patch 0077 packs A once only where all of its panels fit in 64 MiB of the work buffer (the
    # CPU backend keeps that buffer as long as its graphs): 4000 rows by k = 4100 do (62.6 MiB), 4100
    # rows (4128 in whole tiles, 64.6 MiB) do not, and the product then packs them for each block of b.
    if not packed_cpu_product():
        pytest.skip("this build's CPU backend has no packed product (a build without AVX2, or not for x86)")
    rng = np.random.default_rng(13)
    a, b = rng.standard_normal((m, 4100)).astype(np.float32), rng.standard_normal((200, 4100)).astype(np.float32)
    previous = _testing.set_cpu_op_threads(2)
    try:
        before = _testing.cpu_shared_panels_count()
        got = ops.mul_mat(a, b, device="cpu")
        assert _testing.cpu_shared_panels_count() == before + shared
    finally:
        _testing.set_cpu_op_threads(previous)
    rows = rng.choice(m, 64, replace=False)
    want = b.astype(np.float64) @ a[rows].astype(np.float64).T
    assert np.abs(got[:, rows] - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("method", ["direct", "im2col"])
@pytest.mark.parametrize("weight_dtype", ["float32", "float16"])
@pytest.mark.parametrize(
    "n, c, h, w, out, k, stride, padding",
    [
        (2, 33, 9, 37, 200, 3, 1, 1),  # 297 taps: two k blocks; 200 outputs: two column blocks, tiles of 6 and 2
        (1, 8, 8, 8, 7, 3, 1, 1),  # 8-wide rows: each tile of 16 positions spans two output rows
        (1, 5, 11, 19, 6, 3, 2, 1),  # stride 2
        (1, 3, 6, 35, 5, 1, 1, 0),  # 1x1 kernel
        (1, 4, 7, 33, 9, 4, 2, 2),  # even kernel, padding 2
        (1, 16, 40, 40, 8, 3, 1, 1),  # 1600 positions: several row blocks, whole 16-wide runs inside rows
    ],
)
def test_conv_2d_on_the_cpu_against_its_definition(method, weight_dtype, n, c, h, w, out, k, stride, padding) -> None:
    # Engine patch 0056: the CPU's CONV_2D reads 16 output positions' taps straight from the image
    # into the packed product's panels, with zeros outside it; IM2COL + MUL_MAT is what quantized
    # kernels and the other devices use.
    x, weight = conv_inputs(4, n, c, h, w, out, k, weight_dtype)
    got = ops.conv_2d(x, weight, stride=stride, padding=padding, weight_dtype=weight_dtype, method=method, device="cpu")
    want = conv_2d_reference(x, weight, stride, padding)
    assert got.shape == want.shape
    # With a float16 kernel the image is rounded to float16 too, except by the packed CONV_2D.
    rounded = weight_dtype == "float16" and not (method == "direct" and packed_cpu_product())
    tol = 2e-3 if rounded else 1e-5
    assert np.abs(got - want).max() <= tol * np.abs(want).max()


@pytest.mark.parametrize(
    "n, c, h, w, out, k, padding",
    [
        (2, 6, 5, 1, 20, 3, 1),  # one column: every tap but the middle one falls outside
        (1, 5, 4, 3, 20, 5, 3),  # padding 3 > the width: whole runs outside
        (2, 7, 6, 17, 20, 3, 2),  # runs of 16 and 1 positions
        (1, 4, 5, 40, 20, 5, 2),  # 40-wide rows: an edge in the second vector of a run
    ],
)
def test_conv_2d_reads_zeros_past_the_image_edges(n, c, h, w, out, k, padding) -> None:
    # Engine patch 0072: with AVX-512 the runs of positions whose taps fall partly in the padding are
    # copied with masked loads (lanes outside the row left zero); elsewhere one value at a time.
    x, weight = conv_inputs(6, n, c, h, w, out, k)
    got = ops.conv_2d(x, weight, padding=padding, method="direct", device="cpu")
    want = conv_2d_reference(x, weight, 1, padding)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("weight_dtype", ["float32", "float16"])
@pytest.mark.parametrize(
    "n, c, h, w, out, stride",
    [
        (2, 64, 4, 4, 96, 1),  # a 4x4 latent twice (batched CFG): one 32-row tile with AVX-512
        (3, 24, 2, 2, 40, 1),  # 2x2 planes: three images in one tile
        (5, 16, 3, 3, 30, 1),  # 9 positions: tiles end inside an image
        (30, 8, 3, 3, 20, 1),  # 270 positions: two blocks of rows, the first ends inside an image
        (4, 9, 5, 3, 210, 2),  # stride 2, 3x2 outputs; 210 kernels: several blocks of them
    ],
)
def test_conv_2d_of_small_planes_shares_tiles_across_images(weight_dtype, n, c, h, w, out, stride) -> None:
    # Engine patch 0071: planes smaller than the packed product's tile (16 positions with AVX2, 32
    # with AVX-512) fill tiles from several images, the results copied out image by image. Each
    # output's sum keeps its order: the batch equals its images convolved one at a time, exactly.
    if not packed_cpu_product():
        pytest.skip("this build's CPU backend has no packed product (a build without AVX2, or not for x86)")
    x, weight = conv_inputs(5, n, c, h, w, out, 3, weight_dtype)
    conv = functools.partial(ops.conv_2d, weight=weight, stride=stride, padding=1, weight_dtype=weight_dtype,
                             method="direct", device="cpu")
    got = conv(x)
    want = conv_2d_reference(x, weight, stride, 1)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    assert np.array_equal(got, np.concatenate([conv(x[i : i + 1]) for i in range(n)]))


@pytest.mark.parametrize("weight_dtype", ["float32", "float16"])
@pytest.mark.parametrize(
    "n, c, h, w, out, padding",
    [
        (1, 32, 32, 32, 64, 1),  # 16 x 16 tiles of 2 x 2 outputs: the fewest taken, 32 and 64 channels
        (2, 64, 33, 35, 96, 1),  # odd sizes: the last tile row and column half outside; two images
        (1, 40, 40, 31, 64, 0),  # no padding
        (1, 32, 36, 36, 64, 2),  # padding 2
        (1, 512, 4, 600, 512, 1),  # 19 MB of transforms per tile row: one row at a time, two bands
    ],
)
def test_winograd_convolutions_on_the_cpu_against_their_definition(weight_dtype, n, c, h, w, out, padding) -> None:
    # Engine patch 0066: where the packed product runs CONV_2D, a 3x3 kernel at stride 1 over 256 tiles
    # or more, with 32 input and 64 output channels or more, is Winograd's F(2x2, 3x3): the 4x4 input
    # block of each 2x2 block of outputs and the kernels transformed, 16 products, then the outputs.
    if not packed_cpu_product():
        pytest.skip("engine patch 0066 runs in the packed CPU product (x86 builds with AVX2)")
    x, weight = conv_inputs(8, n, c, h, w, out, 3, weight_dtype)
    before = _testing.cpu_winograd_count()
    got = ops.conv_2d(x, weight, padding=padding, weight_dtype=weight_dtype, method="direct", device="cpu")
    assert _testing.cpu_winograd_count() == before + 1
    want = conv_2d_reference(x, weight, 1, padding)
    assert got.shape == want.shape
    # the transforms' additions round a little more than the direct sum: 2e-7 to 8e-7 measured
    assert np.abs(got - want).max() <= 5e-6 * np.abs(want).max()


@pytest.mark.parametrize(
    "c, h, w, out, k, stride",
    [
        (32, 30, 30, 64, 3, 1),  # 15 x 15 tiles
        (16, 32, 32, 64, 3, 1),  # 16 input channels
        (32, 32, 32, 48, 3, 1),  # 48 output channels
        (32, 64, 64, 64, 3, 2),  # stride 2
        (32, 32, 32, 64, 1, 1),  # 1x1 kernel
    ],
)
def test_small_or_other_convolutions_stay_direct(c, h, w, out, k, stride) -> None:
    if not packed_cpu_product():
        pytest.skip("engine patch 0066 runs in the packed CPU product (x86 builds with AVX2)")
    rng = np.random.default_rng(9)
    x, weight = rng.standard_normal((1, c, h, w)), rng.standard_normal((out, c, k, k))
    before = _testing.cpu_winograd_count()
    got = ops.conv_2d(x, weight, stride=stride, padding=k // 2, method="direct", device="cpu")
    assert _testing.cpu_winograd_count() == before
    want = conv_2d_reference(x.astype(np.float32), weight.astype(np.float32), stride, k // 2)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize(
    "option, message",
    [({"method": "fft"}, "method: must be 'auto', 'im2col' or 'direct', not 'fft'"),
     ({"weight_dtype": "bfloat16"}, "weight_dtype: must be 'float32' or 'float16', not 'bfloat16'")],
)
def test_conv_2d_refuses_an_unknown_method_or_weight_type(option, message) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match="^" + re.escape(message)):
        ops.conv_2d(np.ones((1, 3, 8, 8)), np.ones((4, 3, 3, 3)), device="cpu", **option)


def test_conv_2d_auto_is_the_engines_choice() -> None:
    # The engine runs a float kernel's convolution as CONV_2D on a CPU with the packed product
    # (ggml_extend.hpp, patch 0056): the image is then not rounded to float16, which tells them apart.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 32, 12, 12)).astype(np.float32)
    weight = rng.standard_normal((16, 32, 3, 3)).astype(np.float16).astype(np.float32)
    runs = {m: ops.conv_2d(x, weight, padding=1, weight_dtype="float16", method=m, device="cpu")
            for m in ("auto", "direct", "im2col")}
    np.testing.assert_array_equal(runs["auto"], runs["direct" if packed_cpu_product() else "im2col"])
    if packed_cpu_product():
        assert not np.array_equal(runs["direct"], runs["im2col"])


def test_cpu_op_threads_are_kept_and_give_the_same_result_with_the_op_time_reported() -> None:
    # benchmarks/conv_times.py times one op as a Generator runs it (one thread per core), without the
    # copies in and out. The setting round-trips; the packed product sums in one order on any number of
    # threads, so the result does not change with it.
    x = np.random.default_rng(7).standard_normal((1, 64, 32, 32)).astype(np.float32)
    w = np.ones((64, 64, 3, 3), np.float32)
    previous = _testing.set_cpu_op_threads(1)
    try:
        one = ops.conv_2d(x, w, padding=1, method="direct", device="cpu")
        assert 0 < _testing.last_op_seconds() < 60
        assert _testing.set_cpu_op_threads(3) == 1
        assert np.array_equal(ops.conv_2d(x, w, padding=1, method="direct", device="cpu"), one)
    finally:
        _testing.set_cpu_op_threads(previous)
    assert previous == 0  # the op tests' thread splits assume the backend's default


def test_cpu_scale_runs_on_every_thread() -> None:
    # Engine patch 0079: ggml ran SCALE on one thread. SDXL's VAE scales the input and output of each of
    # its convolutions (its Conv2D scale against float16 overflow): at 512x512 those nodes took 1.85 s of
    # an 8.5 s decode on 2 Zen 5 threads. The rows are now split over the threads; each value is one product.
    x = np.random.default_rng(17).standard_normal((3, 37, 100)).astype(np.float32)
    threads = _testing.set_cpu_op_threads(1)
    try:
        before = _testing.cpu_parallel_scale_count()
        one = _testing.op_scale(x, 0.031, "CPU")
        assert _testing.cpu_parallel_scale_count() == before
        _testing.set_cpu_op_threads(3)
        three = _testing.op_scale(x, 0.031, "CPU")
        assert _testing.cpu_parallel_scale_count() == before + 1
    finally:
        _testing.set_cpu_op_threads(threads)
    np.testing.assert_array_equal(one, x * np.float32(0.031))
    np.testing.assert_array_equal(three, one)


@pytest.mark.parametrize(
    "a_batches, b_batches, m, n, k",
    [((40,), (40,), 256, 256, 64), ((40,), (40,), 64, 256, 256), ((6,), (6,), 77, 300, 64),
     ((6,), (6,), 40, 300, 77), ((2,), (2,), 500, 700, 96), ((2,), (2,), 40, 530, 77), ((1, 2), (3, 2), 80, 100, 64)],
    ids=["sdxl-q-k", "sdxl-softmax-v", "cross-q-k", "sd1-softmax-v-transposed", "few-batches-split",
         "transposed-split-with-a-remainder", "4d-a-repeated"],
)
def test_cpu_batched_products_run_each_batch_on_one_thread(a_batches, b_batches, m, n, k) -> None:
    # Engine patch 0080: attention's products, one per head and image, were each split over all the threads
    # with two barriers: on a 16-core Xeon SDXL's took 1.0 s of a 5.0 s UNet evaluation at 77-104 GFLOP/s.
    # Each batch's product (or a piece of its rows) is now one thread's job, summed as before: the result
    # is the same as each batch's product alone, on any number of threads.
    if not packed_cpu_product():
        pytest.skip("the packed product is x86 with AVX2 only (engine patch 0056)")
    rng = np.random.default_rng(m * n)
    a = rng.standard_normal((*a_batches, m, k)).astype(np.float32)
    b = rng.standard_normal((*b_batches, n, k)).astype(np.float32)
    a_each = np.broadcast_to(a, (*b_batches, m, k)).reshape(-1, m, k)  # ggml repeats A over B's batches
    threads = _testing.set_cpu_op_threads(1)
    try:
        alone = np.stack([_core.op_mul_mat(x, y, False, "CPU") for x, y in zip(a_each, b.reshape(-1, n, k))])
        results = []
        for count in (1, 3):
            _testing.set_cpu_op_threads(count)
            before = _testing.cpu_batched_products_count()
            results.append(_core.op_mul_mat(a, b, False, "CPU").reshape(-1, n, m))
            assert _testing.cpu_batched_products_count() == before + 1
    finally:
        _testing.set_cpu_op_threads(threads)
    for got in results:
        np.testing.assert_array_equal(got, alone)
    np.testing.assert_allclose(alone, b.reshape(-1, n, k) @ a_each.transpose(0, 2, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("f16", [False, True], ids=["float32", "float16"])
def test_cpu_transposed_copies_move_typed_elements(f16) -> None:
    # Engine patch 0081: a CONT whose source is strided in its first dimension (attention's V, transposed for
    # softmax.V) copied each element with a memcpy call of run-time size: 3-6 GB/s on 2 Zen 5 threads. 2- and
    # 4-byte elements are now copied as such; the copy must still be exact, on any number of threads.
    x = np.random.default_rng(5).standard_normal((2, 3, 77, 40)).astype(np.float32)
    expected = x.swapaxes(-1, -2).astype(np.float16 if f16 else np.float32).astype(np.float32)
    threads = _testing.set_cpu_op_threads(1)
    try:
        for count in (1, 3):
            _testing.set_cpu_op_threads(count)
            before = _testing.cpu_typed_strided_copy_count()
            got = _testing.op_transpose(x, f16, "CPU")
            assert _testing.cpu_typed_strided_copy_count() == before + 1
            np.testing.assert_array_equal(got, expected)
    finally:
        _testing.set_cpu_op_threads(threads)


def test_cpu_geglu_vectors_match_the_one_value_path() -> None:
    # Engine patch 0082: GEGLU (the UNet transformer's widest activation) took a value at a time through
    # float16 and GELU's table: 276-311 ms of an SDXL 512x512 UNet evaluation on 2 Zen 5 threads. With AVX2 or
    # AVX-512 it takes 8 or 16 at once, rounding and looking up as before. Each row ends in 15 values that the
    # one-value path still computes: the same inputs as the row's first 15, which the vectors compute.
    d = 16 * 40 + 15
    rng = np.random.default_rng(6)
    x = (4 * rng.standard_normal((3, 2 * d))).astype(np.float32)
    x[0, d:d + 9] = [-10.0, 10.0, -10.001, 9.999, np.inf, -np.inf, 0.0, -0.0, 70000.0]  # the clamps, float16's overflow
    x[:, d - 15:d], x[:, 2 * d - 15:] = x[:, :15], x[:, d:d + 15]
    threads = _testing.set_cpu_op_threads(1)
    try:
        results = []
        for count in (1, 3):
            _testing.set_cpu_op_threads(count)
            results.append(_testing.op_geglu(x, "CPU"))
    finally:
        _testing.set_cpu_op_threads(threads)
    np.testing.assert_array_equal(results[1], results[0])
    y = results[0]
    np.testing.assert_array_equal(y[:, :15], y[:, d - 15:])
    gate, value = x[:, d:].astype(np.float64), x[:, :d].astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        gelu = 0.5 * gate * (1 + np.tanh(math.sqrt(2 / math.pi) * gate * (1 + 0.044715 * gate**2)))
        expected = np.where(gate <= -10, 0.0, np.where(gate >= 10, gate * value, gelu * value))
    np.testing.assert_allclose(y, expected, rtol=4e-3, atol=1e-3)  # GELU through float16, as ggml's table has it


def test_op_warmups_run_the_graph_untimed_first_with_the_same_result() -> None:
    # The single-op benchmarks time an op after an untimed run on the same backend: each call makes a new
    # backend, and the first touch of its work buffer (52 MB of A panels for SDXL's GEGLU input) was timed
    # as part of the op, 17 ms of 60 on 2 Zen 5 threads, where a Generator pays it once. The packed
    # product's count of shared A panels shows each run of the graph.
    rng = np.random.default_rng(16)
    a, b = rng.standard_normal((300, 700)).astype(np.float32), rng.standard_normal((400, 700)).astype(np.float32)
    threads = _testing.set_cpu_op_threads(3)
    try:
        cold = ops.mul_mat(a, b, device="cpu")
        assert _testing.set_op_warmups(1) == 0
        before = _testing.cpu_shared_panels_count()
        warm = ops.mul_mat(a, b, device="cpu")
        if packed_cpu_product():
            assert _testing.cpu_shared_panels_count() == before + 2
    finally:
        _testing.set_op_warmups(0)
        _testing.set_cpu_op_threads(threads)
    assert np.array_equal(warm, cold)
    assert _testing.set_op_warmups(0) == 0


@pytest.mark.parametrize("keys", [2, 7, 8, 31, 33, 64, 77, 1029])
def test_cpu_softmax_finds_the_largest_score_anywhere_in_a_row(keys) -> None:
    # Engine patch 0073: the CPU's softmax takes each row's largest score four vectors at a time, then
    # one value at a time. A largest score missed would overflow exp() and the row would be NaN.
    rng = np.random.default_rng(keys)
    q, k = rng.standard_normal((4, 16)), rng.standard_normal((keys, 16))
    # scores of about 400, far above the others (exp() overflows past 88): in the tail, middle, head
    k[-1], k[keys // 2], k[0] = 100 * q[0], 100 * q[1], 100 * q[2]
    got = ops.attention(q.astype(np.float32), k.astype(np.float32), np.eye(keys, dtype=np.float32), device="cpu")
    scores = q @ k.T / 4
    want = np.exp(scores - scores.max(axis=1, keepdims=True))
    want /= want.sum(axis=1, keepdims=True)
    assert np.isfinite(got).all()
    assert np.abs(got - want).max() <= 1e-5
