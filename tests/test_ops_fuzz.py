"""Random shapes, dtypes and settings for sdcpp.ops: every call either returns the op's result,
which must match numpy, or raises InvalidArgumentError; none may end the process.

ggml ends the process on a shape it cannot take (GGML_ASSERT), so the examples run in a child
interpreter: a crash there fails this test rather than the whole test session, and each example is
printed before it runs, so the child's last line names the one that crashed.

CI runs a bounded number of examples; set SDCPP_FUZZ_EXAMPLES for a longer run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("SDCPP_FUZZ_EXAMPLES", "300"))
DEVICE = os.environ.get("SDCPP_TEST_DEVICE", "auto")

DTYPES = [np.float32] * 6 + [np.float64, np.int32, np.uint8, np.float16, np.complex64, np.bool_, np.str_]
DIM = st.integers(0, 6)


@pytest.mark.slow
def test_random_op_arguments_compute_or_are_refused_never_abort() -> None:
    child = subprocess.run(
        [sys.executable, __file__, str(EXAMPLES)], capture_output=True, text=True, timeout=900
    )
    lines = child.stdout.strip().splitlines()
    assert child.returncode == 0, (
        f"exit status {child.returncode} after {len(lines)} examples; the last one: "
        f"{lines[-1] if lines else 'none'}\n{child.stderr[-3000:]}"
    )
    assert len(lines) >= EXAMPLES // 2, child.stdout[-2000:]
    refused = sum(line.endswith("refused") for line in lines)
    # Both kinds of example must be common, or the fuzzing tests only one side.
    assert 0.1 < refused / len(lines) < 0.9, f"{refused} of {len(lines)} examples were refused"


# --- the child ---------------------------------------------------------------------------------------


def conv_2d_reference(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    n, c, h, wd = x.shape
    out, _, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    result = np.zeros((n, out, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
            result += np.einsum("oc,nchw->nohw", w[:, :, i, j], patch)
    return result


def group_norm_reference(x: np.ndarray, groups: int, eps: float) -> np.ndarray:
    g = x.astype(np.float64).reshape(x.shape[0], groups, -1)
    return ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)).reshape(x.shape)


def attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    s = q.astype(np.float64) @ k.T / np.sqrt(q.shape[1])
    p = np.exp(s - s.max(1, keepdims=True))
    return (p / p.sum(1, keepdims=True)) @ v


def linear_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, r: np.ndarray | None = None) -> np.ndarray:
    # float16 weights; products of at most 6 rows round x to float16 too, on every backend
    half = lambda a: a.astype(np.float16).astype(np.float64)  # noqa: E731
    return half(x) @ half(w).T + b + (0 if r is None else r)


def layer_norm_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, eps: float) -> np.ndarray:
    x = x.astype(np.float64)
    normed = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + eps)
    return normed * w + (0 if b is None else b)


REFERENCES: dict[str, Callable[..., np.ndarray]] = {
    "mul_mat": lambda a, b: b.astype(np.float64) @ a.T,
    "linear": linear_reference,
    "layer_norm": layer_norm_reference,
    "conv_2d": conv_2d_reference,
    "group_norm": group_norm_reference,
    "attention": attention_reference,
}


@st.composite
def shapes(draw: st.DrawFn, valid: tuple[int, ...]) -> tuple[int, ...]:
    """Mostly the shape the op needs, else one with a dimension changed, dropped or added."""
    kind = draw(st.sampled_from(["valid"] * 5 + ["changed", "dropped", "added"]))
    shape = list(valid)
    if kind == "changed":
        shape[draw(st.integers(0, len(shape) - 1))] = draw(DIM)
    elif kind == "dropped":
        del shape[draw(st.integers(0, len(shape) - 1))]
    elif kind == "added":
        shape.insert(draw(st.integers(0, len(shape))), draw(DIM))
    return tuple(shape)


@st.composite
def arrays(draw: st.DrawFn, valid: tuple[int, ...], dtypes: list[type] = DTYPES) -> np.ndarray:
    shape, dtype = draw(shapes(valid)), draw(st.sampled_from(dtypes))
    values = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(shape)
    if values.size and draw(st.integers(0, 9)) == 0:  # now and then a NaN or infinity
        values.flat[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if dtype is np.str_:
        return values.astype(str)
    with np.errstate(invalid="ignore"):
        return values.astype(dtype)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, list[Any]]:
    op = draw(st.sampled_from(sorted(REFERENCES)))
    n, m, k, c, out = (draw(st.integers(1, 6)) for _ in range(5))
    if op == "mul_mat":
        return op, [draw(arrays((m, k))), draw(arrays((n, k)))]
    if op == "attention":
        return op, [draw(arrays((n, k))), draw(arrays((m, k))), draw(arrays((m, out)))]
    if op == "linear":
        residual = draw(st.none() | arrays((n, m)))
        return op, [draw(arrays((n, k))), draw(arrays((m, k))), draw(arrays((m,))), residual]
    if op == "layer_norm":
        eps = draw(st.sampled_from([1e-5, 0.1, -1.0, np.nan, np.inf]))
        # not uint8: -1 wraps to 255, and rows of 253-255 lose their variance to float32 cancellation in
        # CUDA's E[x^2] - mean^2 (a 2 % error in about 4 % of such rows)
        x = draw(arrays((n, c), [t for t in DTYPES if t is not np.uint8]))
        return op, [x, draw(arrays((c,))), draw(st.none() | arrays((c,))), eps]
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    x = draw(arrays((n, c, h, w)))
    if op == "group_norm":
        groups = draw(st.sampled_from([1, c]) | st.integers(-1, 8))
        eps = draw(st.sampled_from([1e-6, 1e-5, 0.1, -1.0, np.nan, np.inf]))
        return op, [x, groups, eps]
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3) | st.sampled_from([0, -1, 2**31, 2**16 + 1]))
    padding = draw(st.integers(0, 2) | st.sampled_from([-1, 2**31, 2**16 + 1]))
    return op, [x, draw(arrays((out, c, kh, kw))), stride, padding]


def describe(op: str, args: list[Any]) -> str:
    parts = [f"{a.dtype}{a.shape}" if isinstance(a, np.ndarray) else repr(a) for a in args]
    return f"{op}({', '.join(parts)})"


def run_case(op: str, args: list[Any], tolerance: float) -> None:
    import sdcpp
    from sdcpp import ops

    print(describe(op, args), end=" ", flush=True)
    try:
        got = getattr(ops, op)(*args, device=DEVICE)
    except sdcpp.InvalidArgumentError:
        print("refused", flush=True)
        return
    arrays_in = [a.astype(np.float32) for a in args if isinstance(a, np.ndarray)]
    with np.errstate(all="ignore"):
        want = REFERENCES[op](*arrays_in, *[a for a in args if not isinstance(a, np.ndarray)])
    assert got.shape == want.shape and got.dtype == np.float32, (got.shape, want.shape)
    if all(np.isfinite(a).all() for a in arrays_in):  # NaN and infinities: only the shape is checked
        # finite inputs can overflow alike in both: a float16 weight or activation beyond 65504 is inf,
        # and inf times 0 is NaN
        finite = np.isfinite(want)
        assert np.array_equal(got[~finite], want[~finite], equal_nan=True), (got[~finite], want[~finite])
        scale = max(1.0, float(np.abs(want[finite]).max(initial=0.0)))
        assert np.abs(got[finite] - want[finite]).max(initial=0.0) <= tolerance * scale, np.abs(got - want).max()
    print("computed", flush=True)


def main(examples: int) -> None:
    from sdcpp.devices import resolve_device
    from sdcpp.doctor import GPU_TOLERANCE

    tolerance = 1e-4 if resolve_device(DEVICE) == "CPU" else GPU_TOLERANCE

    @settings(max_examples=examples, deadline=None, database=None)
    @given(cases())
    def check(case: tuple[str, list[Any]]) -> None:
        run_case(*case, tolerance)

    check()


if __name__ == "__main__":
    main(int(sys.argv[1]))
