"""Random-weight ESRGAN upscalers (RRDBNet) in the layouts the engine reads (src/esrgan.hpp), and a
float64 torch reference of the network for the parity test.

- ``write_x4plus``: Real-ESRGAN x4plus / BasicSR names (``conv_first``, ``body.N.rdbK.convJ``,
  ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``); the engine reads 4x from
  ``conv_up2`` and the block count from the highest ``body.N``.
- ``write_esrgan_x2``: the original ESRGAN names (``model.0``, ``model.1.sub.N.RDBK.convJ.0``, ...)
  of a 2x model: one upsampling convolution (``model.3``), so ``model.7`` is the last layer.
- ``write_x2plus``: Real-ESRGAN x2plus, which unshuffles its input into 12 channels before
  ``conv_first``; the engine does not implement that (it takes any ``conv_up2`` for 4x), so a
  loader must refuse it cleanly.

The engine fixes 64 features and 32 growth channels (it does not read them from the file); the depth
is read from the file, so these have one RRDB block instead of Real-ESRGAN's 23 (about 1.8 MB in
float16). Weights are float16, as the engine converts them to it anyway: the reference then sees the
exact values the engine computes with. ``esrgan_dir`` is the session fixture that builds them once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping

import numpy as np
import pytest

from . import models
from .models import write_safetensors

FEATURES, GROWTH, BLOCKS = 64, 32, 1


def _conv(rng: np.random.Generator, out: int, inp: int, gain: float) -> tuple[np.ndarray, np.ndarray]:
    weight = rng.standard_normal((out, inp, 3, 3), dtype=np.float32) * np.float32(gain / np.sqrt(inp * 9))
    bias = rng.standard_normal(out, dtype=np.float32) * np.float32(0.01)
    return weight.astype(np.float16), bias.astype(np.float16)


def rrdbnet(scale: int, *, seed: int = 0, in_channels: int = 3) -> dict[str, np.ndarray]:
    """BasicSR RRDBNet weights by BasicSR's names, with ``conv_up1`` (scale >= 2) and ``conv_up2`` (4).

    Gains keep activations of unit scale through the network (BasicSR's 0.1 residual-block init
    would make the body vanish beside its skip connection, and the test could not see it), and
    ``conv_last``'s bias of 0.5 centres the output in the image range.
    """
    rng = np.random.default_rng(seed)
    convs = {"conv_first": _conv(rng, FEATURES, in_channels, 1.0)}
    for b in range(BLOCKS):
        for r in range(1, 4):
            for c in range(1, 6):
                out = FEATURES if c == 5 else GROWTH
                convs[f"body.{b}.rdb{r}.conv{c}"] = _conv(rng, out, FEATURES + (c - 1) * GROWTH, 1.4)
    convs["conv_body"] = _conv(rng, FEATURES, FEATURES, 1.0)
    for name in ["conv_up1"] * (scale >= 2) + ["conv_up2"] * (scale == 4) + ["conv_hr"]:
        convs[name] = _conv(rng, FEATURES, FEATURES, 1.4)
    weight, bias = _conv(rng, 3, FEATURES, 0.1)
    convs["conv_last"] = (weight, (bias.astype(np.float32) + 0.5).astype(np.float16))
    return {f"{name}.{part}": t for name, (w, b) in convs.items() for part, t in (("weight", w), ("bias", b))}


def write_x4plus(path, *, seed: int = 0) -> Path:
    write_safetensors(path, rrdbnet(4, seed=seed))
    return Path(path)


def write_x2plus(path, *, seed: int = 0) -> Path:
    # Real-ESRGAN x2plus: pixel_unshuffle(x, 2) gives conv_first 12 input channels; both up-convs.
    write_safetensors(path, rrdbnet(4, seed=seed, in_channels=12))
    return Path(path)


def esrgan_names(tensors: Mapping[str, np.ndarray], scale: int) -> dict[str, np.ndarray]:
    """BasicSR names -> the original ESRGAN ``model.N`` names (the engine's mapping, esrgan.hpp)."""
    tail = {2: {"conv_up1": 3, "conv_hr": 5, "conv_last": 7},
            4: {"conv_up1": 3, "conv_up2": 6, "conv_hr": 8, "conv_last": 10}}[scale]
    out = {}
    for name, t in tensors.items():
        layer, _, part = name.rpartition(".")
        if layer == "conv_first":
            new = "model.0"
        elif layer == "conv_body":
            new = f"model.1.sub.{BLOCKS}"
        elif layer.startswith("body."):
            _, b, rdb, conv = layer.split(".")
            new = f"model.1.sub.{b}.RDB{rdb[3:]}.{conv}.0"
        else:
            new = f"model.{tail[layer]}"
        out[f"{new}.{part}"] = t
    return out


def write_esrgan_x2(path, *, seed: int = 1) -> Path:
    write_safetensors(path, esrgan_names(rrdbnet(2, seed=seed), 2))
    return Path(path)


def reference(tensors: Mapping[str, np.ndarray], scale: int, image: np.ndarray) -> np.ndarray:
    """BasicSR's RRDBNet.forward (without x2plus's pixel unshuffle) in float64 torch.

    ``image``: (height, width, 3) uint8. Returns (height * scale, width * scale, 3) floats in the
    image range [0, 1], not clamped.
    """
    import torch
    from torch.nn.functional import conv2d, interpolate, leaky_relu

    w = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in tensors.items()}

    def conv(name: str, x: torch.Tensor) -> torch.Tensor:
        return conv2d(x, w[f"{name}.weight"], w[f"{name}.bias"], padding=1)

    def lrelu(x: torch.Tensor) -> torch.Tensor:
        return leaky_relu(x, 0.2)

    def rdb(prefix: str, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for c in range(1, 5):
            features.append(lrelu(conv(f"{prefix}.conv{c}", torch.cat(features, 1))))
        return conv(f"{prefix}.conv5", torch.cat(features, 1)) * 0.2 + x

    with torch.no_grad():
        x = torch.from_numpy(image.astype(np.float64) / 255.0).permute(2, 0, 1)[None]
        feat = conv("conv_first", x)
        body = feat
        for b in range(BLOCKS):
            out = body
            for r in range(1, 4):
                out = rdb(f"body.{b}.rdb{r}", out)
            body = out * 0.2 + body
        feat = feat + conv("conv_body", body)
        for name in ["conv_up1"] * (scale >= 2) + ["conv_up2"] * (scale == 4):
            feat = lrelu(conv(name, interpolate(feat, scale_factor=2, mode="nearest")))
        out = conv("conv_last", lrelu(conv("conv_hr", feat)))
    return out[0].permute(1, 2, 0).numpy()


@pytest.fixture(scope="session")
def esrgan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """x4.safetensors (BasicSR names), x2.safetensors (ESRGAN names), x2plus.safetensors (refused)."""
    from .conftest import _cache_dir

    folder = _cache_dir(tmp_path_factory, models, sys.modules[__name__]) / "esrgan"
    folder.mkdir(exist_ok=True)
    for name, write in (("x4", write_x4plus), ("x2", write_esrgan_x2), ("x2plus", write_x2plus)):
        models.build_once(folder / f"{name}.safetensors", write)
    return folder
