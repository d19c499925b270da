"""``sdcpp doctor`` / :func:`self_test`: is each device's ggml right for Stable Diffusion?

Each device runs the kernels every model needs — arange and timestep_embedding, then a small
convolution, matrix product, group norm and attention, and matrix products at the shapes where
Metal 4's tensor API is reported to go wrong — and is compared with the CPU; the CPU is compared
with numpy references of the definitions. A Mac user runs this first.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np

from . import ops
from .devices import devices, resolve_device
from .errors import SdcppError
from .system import packed_cpu_product

__all__ = ["Check", "self_test", "reference_timestep_embedding", "report"]

# Errors are relative to the largest reference value. The CPU's float32 kernels agree with a float64
# reference to ~1e-6 (sin/cos of arguments up to ~1000 lose a few more digits: 4e-5 measured). GPU
# kernels may compute float32 products in reduced precision (the H100's mul_mat differed from the
# CPU by 3e-3 absolute on outputs of ~6, 5e-4 relative); a missing or wrong kernel is off by O(1).
TOLERANCE = {"CPU": 1e-4}
GPU_TOLERANCE = 1e-2

# Matrix products (m output columns, shared dimension k, n rows) at the shapes where Metal 4's
# tensor API, ggml's matrix-matrix kernel on Apple M5, M6, A19 and A20 GPUs, is reported to write
# past its output: m = 64 modulo 128, like SD's 320-channel layers, with float16 weights and
# float32 activations as in the UNet. ggml-metal-ops.cpp takes that kernel (kernel_mul_mm) only
# when k >= 64 and n > 8 (fewer rows take the matrix-vector kernels), hence these sizes; one fills
# whole 64x32 output tiles (the direct tile store), the other ends in a partial tile.
TENSOR_API_PRODUCTS = {
    "mul_mat_f16 320x64": (320, 320, 64),
    "mul_mat_f16 704x77": (704, 96, 77),
}


@dataclasses.dataclass
class Check:
    device: str
    op: str
    passed: bool
    max_error: float  # largest |device - reference| / largest |reference|
    reference: str  # what the device was compared with: "numpy" or "CPU"
    message: str = ""


def reference_timestep_embedding(timesteps: np.ndarray, dim: int, max_period: int = 10000) -> np.ndarray:
    """The definition, in float64: cos and sin halves over exp(-ln(max_period) * j / half), zero-padded."""
    t = np.asarray(timesteps, np.float64)[:, None]
    half = dim // 2
    freqs = np.exp(-math.log(max_period) * np.arange(half) / half)
    out = np.concatenate([np.cos(t * freqs), np.sin(t * freqs)], axis=1)
    return np.pad(out, ((0, 0), (0, dim % 2)))


def _cases(rng: np.random.Generator) -> dict[str, tuple[Callable[[str], np.ndarray], np.ndarray]]:
    """Each op as a function of the device, with its numpy reference."""
    t = np.array([0, 1, 10, 250.5, 999], np.float32)
    x = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)
    w = (rng.standard_normal((4, 8, 3, 3)) / 8).astype(np.float32)
    a = rng.standard_normal((16, 32)).astype(np.float32)
    b = rng.standard_normal((8, 32)).astype(np.float32)
    q, k, v = (rng.standard_normal((12, 16)).astype(np.float32) for _ in range(3))
    g = x.reshape(1, 2, -1)
    norm = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-6)).reshape(x.shape)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = sum(
        np.einsum("nchw,oc->nohw", xp[:, :, i : i + 6, j : j + 6], w[:, :, i, j]) for i in range(3) for j in range(3)
    )
    s = q @ k.T / 4
    p = np.exp(s - s.max(1, keepdims=True))
    # Cross-attention over a 77-token context with SDXL's head size: both of its products take
    # kernel_mul_mm on Metal, the second with k = 77 (not a multiple of 32) and 64 output columns.
    q77, k77, v77 = (rng.standard_normal((n, 64)).astype(np.float32) for n in (64, 77, 77))
    s77 = q77.astype(np.float64) @ k77.T / 8
    p77 = np.exp(s77 - s77.max(1, keepdims=True))
    cases = {
        "arange": (lambda d: ops.arange(-3, 5, 0.5, device=d), np.arange(-3, 5, 0.5)),
        "timestep_embedding": (
            lambda d: ops.timestep_embedding(t, 321, device=d), reference_timestep_embedding(t, 321)
        ),
        "conv_2d": (lambda d: ops.conv_2d(x, w, 1, 1, device=d), conv),
        "mul_mat": (lambda d: ops.mul_mat(a, b, device=d), b.astype(np.float64) @ a.T),
        "group_norm": (lambda d: ops.group_norm(x, 2, 1e-6, device=d), norm),
        "attention": (lambda d: ops.attention(q, k, v, device=d), (p / p.sum(1, keepdims=True)) @ v),
        "attention_77": (lambda d: ops.attention(q77, k77, v77, device=d), (p77 / p77.sum(1, keepdims=True)) @ v77),
    }
    for op, shape in TENSOR_API_PRODUCTS.items():
        cases[op] = _f16_product(rng, *shape)
    cases["linear"] = _linear(rng)
    cases["layer_norm"] = _layer_norm(rng)
    return cases


def _linear(rng: np.random.Generator) -> tuple[Callable[[str], np.ndarray], np.ndarray]:
    """A linear layer with bias and residual, 80 rows: on NVIDIA's data-center GPUs one cuBLASLt product
    (engine patch 0063)."""
    weight, x, product = _f16_operands(rng, 64, 32, 80)
    bias, residual = rng.standard_normal(64).astype(np.float32), rng.standard_normal((80, 64)).astype(np.float32)
    return (lambda d: ops.linear(x, weight, bias, residual, device=d)), product + bias + residual


def _layer_norm(rng: np.random.Generator) -> tuple[Callable[[str], np.ndarray], np.ndarray]:
    """LayerNorm with weight and bias, built in place as the UNet builds it: one kernel on CUDA (engine
    patch 0064), NORM fused with MUL on Metal."""
    x = (2 + 3 * rng.standard_normal((12, 96))).astype(np.float32)
    weight, bias = (1 + rng.standard_normal(96)).astype(np.float32), rng.standard_normal(96).astype(np.float32)
    x64 = x.astype(np.float64)
    normed = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + 1e-5)
    return (lambda d: ops.layer_norm(x, weight, bias, 1e-5, device=d)), normed * weight + bias


def _f16_operands(rng: np.random.Generator, m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A float16 weight (m, k), float32 activations (n, k) and their product in float64: the activations
    are rounded to float16 as ggml's CPU rounds them unless it has the packed product (engine patch
    0056), so that every device's result is comparable."""
    weight = (rng.standard_normal((m, k)) / math.sqrt(k)).astype(np.float32)
    x = rng.standard_normal((n, k)).astype(np.float32)
    if not packed_cpu_product():
        x = x.astype(np.float16).astype(np.float32)
    return weight, x, x.astype(np.float64) @ weight.astype(np.float16).astype(np.float64).T


def _f16_product(rng: np.random.Generator, m: int, k: int, n: int) -> tuple[Callable[[str], np.ndarray], np.ndarray]:
    """A float16 weight (m, k) times float32 activations (n, k), as the UNet's products run."""
    weight, x, product = _f16_operands(rng, m, k, n)
    return (lambda d: ops.mul_mat(weight, x, a_dtype="float16", device=d)), product


def _error(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        return math.inf
    return float(np.max(np.abs(got - want)) / max(1e-30, float(np.max(np.abs(want)))))


def self_test(device: Optional[str] = None) -> list[Check]:
    """Run the kernel checks on ``device`` (default: every device of this build).

    Returns one :class:`Check` per device and op; a device that lacks a kernel gets a failed check
    naming it rather than an exception.
    """
    names = [resolve_device(device)] if device else [d["name"] for d in devices()]
    cases = _cases(np.random.default_rng(0))
    on_cpu = {op: run("CPU") for op, (run, _) in cases.items()}
    checks = []
    for name in names:
        for op, (run, reference) in cases.items():
            want, against = (reference, "numpy") if name == "CPU" else (on_cpu[op], "CPU")
            try:
                err = _error(run(name), want)
                checks.append(Check(name, op, err <= TOLERANCE.get(name, GPU_TOLERANCE), err, against))
            except SdcppError as e:
                checks.append(Check(name, op, False, math.inf, against, str(e)))
    return checks


def report(checks: list[Check]) -> str:
    """The checks as the table `sdcpp doctor` prints."""
    lines = [f"{'device':<8} {'op':<20} {'result':<6} {'max error':>10}  compared with"]
    for c in checks:
        lines.append(
            f"{c.device:<8} {c.op:<20} {'pass' if c.passed else 'FAIL':<6} {c.max_error:>10.2e}  {c.reference}"
            + (f"  ({c.message})" if c.message else "")
        )
    return "\n".join(lines)
