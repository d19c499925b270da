"""Single ggml operations on a chosen device, returning numpy arrays.

They run through the same ggml build that generates images, so they show whether a backend's
kernels are present and right — ``arange`` and ``timestep_embedding`` above all, whose absence on
Metal once made every model fail with "unsupported op 'TIMESTEP_EMBEDDING'". A device without a
kernel raises :class:`sdcpp.UnsupportedOperation` instead of aborting.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np

from . import _core
from .devices import resolve_device
from .errors import InvalidArgumentError

__all__ = ["arange", "timestep_embedding", "mul_mat", "conv_2d", "group_norm", "attention"]

ArrayLike = Union[np.ndarray, Sequence[float]]

_MAX_ELEMENTS = 2**31 - 1


def arange(start: float, stop: float, step: float = 1.0, *, device: str = "auto") -> np.ndarray:
    """``[start, start + step, ...)`` up to ``stop`` (exclusive), in float32, like ``numpy.arange``.

    ggml's ``GGML_OP_ARANGE`` only counts upwards; a negative ``step`` runs as ``start + step *
    arange(n)`` in the same graph. An empty range returns an empty array.
    """
    for name, value in (("start", start), ("stop", stop), ("step", step)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise InvalidArgumentError(f"{name}: must be a finite number, not {value!r}")
    if step == 0:
        raise InvalidArgumentError("step: must not be 0")
    count = math.ceil((stop - start) / step)
    if count <= 0:
        return np.empty(0, np.float32)
    if count > _MAX_ELEMENTS:
        raise InvalidArgumentError(f"step: the range has {count} elements, more than {_MAX_ELEMENTS}")
    return _core.op_arange(start, stop, step, resolve_device(device))


def timestep_embedding(
    timesteps: ArrayLike, dim: int, max_period: int = 10000, *, device: str = "auto"
) -> np.ndarray:
    """Sinusoidal embeddings of shape ``(len(timesteps), dim)`` (ggml's ``GGML_OP_TIMESTEP_EMBEDDING``).

    Row ``i`` holds ``cos(t_i * f_j)`` then ``sin(t_i * f_j)`` for ``f_j = exp(-ln(max_period) * j /
    half)``, ``half = dim // 2``, and a zero last column when ``dim`` is odd.
    """
    t = np.asarray(timesteps, np.float32)
    if t.ndim != 1 or t.size == 0:
        raise InvalidArgumentError(f"timesteps: must be a non-empty 1-D sequence, not of shape {t.shape}")
    if not isinstance(dim, int) or dim < 1 or not isinstance(max_period, int) or max_period < 1:
        raise InvalidArgumentError(f"dim, max_period: must be positive integers, not {dim!r}, {max_period!r}")
    return _core.op_timestep_embedding(t, dim, max_period, resolve_device(device))


def mul_mat(a: np.ndarray, b: np.ndarray, *, a_dtype: str = "float32", device: str = "auto") -> np.ndarray:
    """ggml's matrix product: ``b @ a.T`` for ``a`` of shape (m, k) and ``b`` of shape (n, k).

    ``a_dtype="float16"`` stores ``a`` as float16, as the UNet's weights are: ggml then rounds
    ``b`` to float16 too on the CPU (and Metal), and sums in float32. Raises
    :class:`sdcpp.GenerationError` when the device writes past the end of the result.
    """
    if a_dtype not in ("float32", "float16"):
        raise InvalidArgumentError(f"a_dtype: must be 'float32' or 'float16', not {a_dtype!r}")
    return _core.op_mul_mat(a, b, a_dtype == "float16", resolve_device(device))


def conv_2d(x: np.ndarray, weight: np.ndarray, stride: int = 1, padding: int = 0, *, device: str = "auto") -> np.ndarray:
    """2-D convolution of ``x`` (n, c, h, w) with ``weight`` (out, c, kh, kw), as the UNet and VAE use it."""
    return _core.op_conv_2d(x, weight, stride, padding, resolve_device(device))


def group_norm(x: np.ndarray, groups: int, eps: float = 1e-6, *, device: str = "auto") -> np.ndarray:
    """Group normalisation of ``x`` (n, c, h, w) without scale or shift."""
    return _core.op_group_norm(x, groups, eps, resolve_device(device))


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, device: str = "auto") -> np.ndarray:
    """``softmax(q @ k.T / sqrt(d)) @ v`` for (n, d) inputs, as ggml's mul_mat and soft_max compute it."""
    return _core.op_attention(q, k, v, resolve_device(device))
