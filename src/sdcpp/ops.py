"""Single ggml operations on a chosen device, returning numpy arrays.

They run through the same ggml build that generates images, so they show whether a backend's
kernels are present and right — ``arange`` and ``timestep_embedding`` above all, whose absence on
Metal once made every model fail with "unsupported op 'TIMESTEP_EMBEDDING'". A device without a
kernel raises :class:`sdcpp.UnsupportedOperation` instead of aborting.

ggml aborts the process on a shape it cannot take, so every argument is checked first: a wrong
one raises :class:`sdcpp.InvalidArgumentError` naming it. A tensor the device has no memory for
raises :class:`sdcpp.GenerationError`.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np

from . import _core
from .devices import devices, resolve_device
from .errors import InvalidArgumentError
from .system import packed_cpu_product

__all__ = ["arange", "timestep_embedding", "mul_mat", "linear", "layer_norm", "conv_2d", "group_norm", "attention"]

ArrayLike = Union[np.ndarray, Sequence[float]]

_MAX_ELEMENTS = 2**31 - 1
# Bounds on convolution settings: ggml computes 2 * padding in a C int, and no model strides further.
_MAX_STRIDE = 2**16


def arange(start: float, stop: float, step: float = 1.0, *, device: str = "auto") -> np.ndarray:
    """``[start, start + step, ...)`` up to ``stop`` (exclusive), in float32, like ``numpy.arange``.

    ggml's ``GGML_OP_ARANGE`` only counts upwards; a negative ``step`` runs as ``start + step *
    arange(n)`` in the same graph. An empty range returns an empty array.
    """
    for name, value in (("start", start), ("stop", stop), ("step", step)):
        if not _is_number(value) or not math.isfinite(value):
            raise InvalidArgumentError(f"{name}: must be a finite number, not {value!r}")
    if step == 0:
        raise InvalidArgumentError("step: must not be 0")
    span = (stop - start) / step  # may overflow to inf, which math.ceil cannot take
    if span > _MAX_ELEMENTS:
        raise InvalidArgumentError(f"step: the range has {span:.3g} elements, more than {_MAX_ELEMENTS}")
    count = math.ceil(span)
    if count <= 0:
        return np.empty(0, np.float32)
    return _core.op_arange(start, stop, step, resolve_device(device))


def timestep_embedding(
    timesteps: ArrayLike, dim: int, max_period: int = 10000, *, device: str = "auto"
) -> np.ndarray:
    """Sinusoidal embeddings of shape ``(len(timesteps), dim)`` (ggml's ``GGML_OP_TIMESTEP_EMBEDDING``).

    Row ``i`` holds ``cos(t_i * f_j)`` then ``sin(t_i * f_j)`` for ``f_j = exp(-ln(max_period) * j /
    half)``, ``half = dim // 2``, and a zero last column when ``dim`` is odd.
    """
    t = _array(timesteps, "timesteps", "n")
    dim = _check_int("dim", dim, 1, _MAX_ELEMENTS)
    max_period = _check_int("max_period", max_period, 1, _MAX_ELEMENTS)
    _check_size("timestep_embedding", (len(t), dim))
    return _core.op_timestep_embedding(t, dim, max_period, resolve_device(device))


def mul_mat(a: ArrayLike, b: ArrayLike, *, a_dtype: str = "float32", device: str = "auto") -> np.ndarray:
    """ggml's matrix product: ``b @ a.T`` of shape (n, m) for ``a`` of shape (m, k) and ``b`` of shape (n, k).

    ``a_dtype="float16"`` stores ``a`` as float16, as the UNet's weights are: ggml then rounds
    ``b`` to float16 too on Metal and on CPUs without the packed product (engine patch 0056: x86
    builds with AVX2, ``system_info()["cpu_features"]["PACKED_GEMM"]``), and sums in float32.
    Raises :class:`sdcpp.GenerationError` when the device writes past the end of the result.
    """
    if a_dtype not in ("float32", "float16"):
        raise InvalidArgumentError(f"a_dtype: must be 'float32' or 'float16', not {a_dtype!r}")
    a, b = _array(a, "a", "m, k"), _array(b, "b", "n, k")
    if a.shape[1] != b.shape[1]:
        raise InvalidArgumentError(
            f"b: has {b.shape[1]} columns but a has {a.shape[1]}; b @ a.T needs a (m, k) and b (n, k)"
        )
    _check_size("mul_mat", (b.shape[0], a.shape[0]))
    return _core.op_mul_mat(a, b, a_dtype == "float16", resolve_device(device))


def linear(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike,
    residual: ArrayLike | None = None,
    *,
    device: str = "auto",
) -> np.ndarray:
    """A linear layer as the UNet builds it: ``x @ weight.T + bias (+ residual)``, of shape (n, m).

    ``x`` is (n, k), ``weight`` (m, k), stored as float16 like the UNet's weights, ``bias`` (m,)
    and ``residual`` (n, m). On NVIDIA's data-center GPUs one cuBLASLt product computes all of it,
    bias and residual added in its epilogue (engine patch 0063), for n of 64 or more; elsewhere, and
    for fewer rows, ggml's MUL_MAT then one ADD each.
    """
    x, weight, bias = _array(x, "x", "n, k"), _array(weight, "weight", "m, k"), _array(bias, "bias", "m")
    n, k = x.shape
    m = weight.shape[0]
    if weight.shape[1] != k:
        raise InvalidArgumentError(f"weight: has {weight.shape[1]} columns but x has {k}; weight must be (m, {k})")
    if bias.shape != (m,):
        raise InvalidArgumentError(f"bias: has shape {bias.shape}, not ({m},): one value per row of weight")
    inputs = [x, weight, bias]
    if residual is not None:
        residual = _array(residual, "residual", "n, m")
        if residual.shape != (n, m):
            raise InvalidArgumentError(f"residual: has shape {residual.shape}, not the result's ({n}, {m})")
        inputs.append(residual)
    _check_size("linear", (n, m))
    return _core.op_linear(inputs, resolve_device(device))


def conv_2d(
    x: ArrayLike,
    weight: ArrayLike,
    stride: int = 1,
    padding: int = 0,
    *,
    weight_dtype: str = "float32",
    method: str = "auto",
    device: str = "auto",
) -> np.ndarray:
    """2-D convolution of ``x`` (n, c, h, w) with ``weight`` (out, c, kh, kw), as the UNet and VAE use it.

    ``stride`` (1 to 65536) and ``padding`` (0 to 65536, zeros) apply to both axes; the result is
    (n, out, (h + 2 padding - kh) // stride + 1, (w + 2 padding - kw) // stride + 1).
    ``weight_dtype="float16"`` stores the kernel as the UNet's are. ``method``: ``"auto"`` computes
    it the way the engine does on that device (ggml's CONV_2D on a CPU build with the packed
    product, engine patch 0056; else IM2COL + MUL_MAT), ``"im2col"`` or ``"direct"`` (CONV_2D) choose.
    """
    if weight_dtype not in ("float32", "float16"):
        raise InvalidArgumentError(f"weight_dtype: must be 'float32' or 'float16', not {weight_dtype!r}")
    if method not in ("auto", "im2col", "direct"):
        raise InvalidArgumentError(f"method: must be 'auto', 'im2col' or 'direct', not {method!r}")
    x, weight = _array(x, "x", "n, c, h, w"), _array(weight, "weight", "out, c, kh, kw")
    stride = _check_int("stride", stride, 1, _MAX_STRIDE)
    padding = _check_int("padding", padding, 0, _MAX_STRIDE)
    n, c, h, w = x.shape
    out, wc, kh, kw = weight.shape
    if wc != c:
        raise InvalidArgumentError(f"weight: has {wc} input channels but x has {c}; weight must be (out, {c}, kh, kw)")
    if kh > h + 2 * padding or kw > w + 2 * padding:
        raise InvalidArgumentError(
            f"weight: the {kh}x{kw} kernel is larger than x padded to {h + 2 * padding}x{w + 2 * padding}; "
            "use a smaller kernel or more padding"
        )
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    _check_size("conv_2d", (n, out, oh, ow))
    _check_size("conv_2d", (n, oh, ow, c * kh * kw))  # ggml's im2col matrix, which it multiplies
    device = resolve_device(device)
    direct = method == "direct" or (method == "auto" and _is_cpu(device) and packed_cpu_product())
    return _core.op_conv_2d(x, weight, stride, padding, weight_dtype == "float16", direct, device)


def _is_cpu(device: str) -> bool:
    return any(d["name"] == device and d["type"] == "cpu" for d in devices())


def layer_norm(
    x: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None, eps: float = 1e-5, *, device: str = "auto"
) -> np.ndarray:
    """LayerNorm over the last axis of ``x`` (n, c), then ``* weight (+ bias)``, both (c,), as the UNet's
    transformer blocks use it. On CUDA the three passes run as one kernel (engine patch 0064).
    """
    x, weight = _array(x, "x", "n, c"), _array(weight, "weight", "c")
    c = x.shape[1]
    if weight.shape != (c,):
        raise InvalidArgumentError(f"weight: has shape {weight.shape}, not ({c},): one value per column of x")
    inputs = [x, weight]
    if bias is not None:
        bias = _array(bias, "bias", "c")
        if bias.shape != (c,):
            raise InvalidArgumentError(f"bias: has shape {bias.shape}, not ({c},): one value per column of x")
        inputs.append(bias)
    if not _is_number(eps) or not 0 <= eps < math.inf:
        raise InvalidArgumentError(f"eps: must be a finite number >= 0, not {eps!r}")
    return _core.op_layer_norm(inputs, float(eps), resolve_device(device))


def group_norm(x: ArrayLike, groups: int, eps: float = 1e-6, *, device: str = "auto") -> np.ndarray:
    """Group normalisation of ``x`` (n, c, h, w) without scale or shift; ``groups`` must divide c."""
    x = _array(x, "x", "n, c, h, w")
    channels = x.shape[1]
    groups = _check_int("groups", groups, 1, channels)
    if channels % groups:
        raise InvalidArgumentError(f"groups: must divide the {channels} channels of x, not {groups}")
    if not _is_number(eps) or not 0 <= eps < math.inf:
        raise InvalidArgumentError(f"eps: must be a finite number >= 0, not {eps!r}")
    return _core.op_group_norm(x, groups, eps, resolve_device(device))


def attention(
    q: ArrayLike, k: ArrayLike, v: ArrayLike, *, flash: bool = False, device: str = "auto"
) -> np.ndarray:
    """``softmax(q @ k.T / sqrt(d)) @ v`` of shape (n, e) for ``q`` (n, d), ``k`` (m, d), ``v`` (m, e),
    as ggml's mul_mat and soft_max compute it; with ``flash``, as ggml's fused flash-attention kernel
    computes it for ``Generator(flash_attn=True)``: ``k`` and ``v`` rounded to float16 first, as the
    engine does, and no (n, m) score matrix in memory. A device without a flash kernel for the head
    size raises :class:`sdcpp.UnsupportedOperation` (CUDA has them for d = e in 40, 64, 72, 80, 96,
    112, 128 and 256).
    """
    q, k, v = _array(q, "q", "n, d"), _array(k, "k", "m, d"), _array(v, "v", "m, e")
    if k.shape[1] != q.shape[1]:
        raise InvalidArgumentError(f"k: has head dimension {k.shape[1]} but q has {q.shape[1]}; they must match")
    if v.shape[0] != k.shape[0]:
        raise InvalidArgumentError(f"v: has {v.shape[0]} rows but k has {k.shape[0]}; each key needs one value")
    if not isinstance(flash, (bool, np.bool_)):
        raise InvalidArgumentError(f"flash: must be True or False, not {flash!r}")
    _check_size("attention", (q.shape[0], k.shape[0]))  # the score matrix
    _check_size("attention", (q.shape[0], v.shape[1]))
    return _core.op_attention(q, k, v, bool(flash), resolve_device(device))


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if not _is_int(value) or not low <= value <= high:
        raise InvalidArgumentError(f"{name}: must be an integer from {low} to {high}, not {value!r}")
    return int(value)


def _array(value: object, name: str, layout: str) -> np.ndarray:
    """``value`` as a C-contiguous float32 array with the dimensions of ``layout`` (e.g. ``"n, c, h, w"``).

    NaN and infinities are kept: they propagate as in numpy. Empty arrays are refused: a ggml tensor
    has at least one element in every dimension.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nesting, objects numpy cannot convert
        raise InvalidArgumentError(f"{name}: must be an array of real numbers ({e})") from None
    if array.dtype.kind not in "iuf":
        raise InvalidArgumentError(f"{name}: must be an array of real numbers, not of dtype {array.dtype}")
    ndim = layout.count(",") + 1
    if array.ndim != ndim:
        raise InvalidArgumentError(f"{name}: must have {ndim} dimensions ({layout}), not shape {array.shape}")
    if array.size == 0:
        raise InvalidArgumentError(f"{name}: must not be empty, not of shape {array.shape}")
    with np.errstate(over="ignore"):  # beyond float32's range becomes inf, as any float32 cast does
        return np.ascontiguousarray(array, np.float32)


def _check_size(op: str, shape: Sequence[int]) -> None:
    """A tensor the op creates must stay within the element counts ggml's kernels index."""
    count = math.prod(shape)
    if count > _MAX_ELEMENTS:
        raise InvalidArgumentError(
            f"{op}: the inputs make a tensor of shape {tuple(shape)}, {count} elements, more than "
            f"{_MAX_ELEMENTS}; use smaller inputs"
        )
