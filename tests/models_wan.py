"""Random-weight Wan 2.1 (text to video), on the machinery of models.py and models_dit.py.

Two files, as ComfyUI's repackaged release names them (no prefix):

* ``wan2.1-t2v-1.3b-q4_0.gguf``: the Wan 2.1 T2V 1.3B transformer (``blocks.N.self_attn.q.weight``,
  ``blocks.N.cross_attn.norm_k.weight``, ``head.modulation`` ...) as q4_0 GGUF, the form most people
  download it in. wan.hpp counts the blocks in the file but then accepts only 30 (the 1.3B models,
  width 1536) or 40 (the 14B ones, width 5120) and aborts on any other count, so this is the real
  size: 1.42 G parameters, 0.8 GB. The 5-D patch embedding is stored 4-D (output and input channels
  folded together), as ggml and city96's GGUF conversions hold it.
* ``wan_2.1_vae.safetensors``: the Wan 2.1 causal 3-D VAE (``encoder.downsamples.N.residual.2.weight``,
  ``decoder.upsamples.N.resample.1.weight``, ``conv1``, ``conv2``): sizes fixed in wan.hpp, 127 M
  parameters, 254 MB in float16.

Not written: umt5-xxl (t5.hpp fixes 24 layers of 4096, 5.7 G parameters with its 256 k-token
embedding, 3.2 GB in q4_0, and it encodes every prompt padded to 512 tokens: about 4.7 TFLOP per
prompt, minutes on this machine's 2 cores). The engine runs Wan without it, feeding a context of
zeros (T5CLIPEmbedder, conditioner.hpp): the prompt then has no effect.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np

from .models import _METADATA, _Scope, write_safetensors
from .models_dit import _lazy, write_gguf

__all__ = ["write_wan_t2v", "write_wan_vae"]

# wan.hpp's WanRunner for 30 blocks (Wan2.1-T2V-1.3B).
_DEPTH, _WIDTH, _FFN, _FREQ, _TEXT, _LATENT = 30, 1536, 8960, 256, 4096, 16
_PATCH = (1, 2, 2)  # frames, height, width
# WanVAE (Wan 2.1): base width 96, multipliers 1, 2, 4, 4, two residual blocks per level.
_VAE_DIM, _VAE_MULT, _VAE_RES = 96, (1, 2, 4, 4), 2
_TIME_DOWN, _TIME_UP = (False, True, True), (True, True, False)


def _rms(s: _Scope, c: int, spatial_dims: int = 3) -> None:
    """The VAE's RMS_norm: a gamma shaped (c, 1, 1, 1) for video features, (c, 1, 1) for images."""
    s._add("gamma", (c, *(1,) * spatial_dims), "norm")


def _conv3d(s: _Scope, cout: int, cin: int, kernel=(3, 3, 3)) -> None:
    s._add("weight", (cout, cin, *kernel), "weight")
    s._add("bias", (cout,), "bias")


def _residual(s: _Scope, cin: int, cout: int) -> None:
    _rms(s("residual.0"), cin)
    _conv3d(s("residual.2"), cout, cin)
    _rms(s("residual.3"), cout)
    _conv3d(s("residual.6"), cout, cout)
    if cin != cout:
        _conv3d(s("shortcut"), cout, cin, (1, 1, 1))


def _attention(s: _Scope, c: int) -> None:
    _rms(s("norm"), c, spatial_dims=2)
    s("to_qkv").conv(3 * c, c, 1)
    s("proj").conv(c, c, 1)


def _middle(s: _Scope, c: int) -> None:
    _residual(s("middle.0"), c, c)
    _attention(s("middle.1"), c)
    _residual(s("middle.2"), c, c)


def _resample(s: _Scope, c: int, mode: str) -> None:
    """wan.hpp's Resample: a 3x3 convolution (halving the channels when upsampling), and for the
    modes that also resample time, a causal convolution over 3 frames."""
    up = mode.startswith("up")
    s("resample.1").conv(c // 2 if up else c, c)
    if mode.endswith("3d"):
        _conv3d(s("time_conv"), 2 * c if up else c, c, (3, 1, 1))


def _encoder(s: _Scope) -> None:
    dims = [_VAE_DIM * m for m in (1, *_VAE_MULT)]
    _conv3d(s("conv1"), dims[0], 3)
    index = 0
    for i, (cin, cout) in enumerate(zip(dims, dims[1:])):
        for _ in range(_VAE_RES):
            _residual(s(f"downsamples.{index}"), cin, cout)
            cin, index = cout, index + 1
        if i != len(_VAE_MULT) - 1:
            _resample(s(f"downsamples.{index}"), cout, "downsample3d" if _TIME_DOWN[i] else "downsample2d")
            index += 1
    _middle(s, dims[-1])
    _rms(s("head.0"), dims[-1])
    _conv3d(s("head.2"), 2 * _LATENT, dims[-1])


def _decoder(s: _Scope) -> None:
    dims = [_VAE_DIM * _VAE_MULT[-1], *(_VAE_DIM * m for m in reversed(_VAE_MULT))]
    _conv3d(s("conv1"), dims[0], _LATENT)
    _middle(s, dims[0])
    index = 0
    for i, (cin, cout) in enumerate(zip(dims, dims[1:])):
        if i > 0:  # the previous level's upsampling convolution halved the channels
            cin //= 2
        for _ in range(_VAE_RES + 1):
            _residual(s(f"upsamples.{index}"), cin, cout)
            cin, index = cout, index + 1
        if i != len(_VAE_MULT) - 1:
            _resample(s(f"upsamples.{index}"), cout, "upsample3d" if _TIME_UP[i] else "upsample2d")
            index += 1
    _rms(s("head.0"), dims[-1])
    _conv3d(s("head.2"), 3, dims[-1])


def _wan_vae(s: _Scope) -> None:
    _encoder(s("encoder"))
    _conv3d(s("conv1"), 2 * _LATENT, 2 * _LATENT, (1, 1, 1))
    _decoder(s("decoder"))
    _conv3d(s("conv2"), _LATENT, _LATENT, (1, 1, 1))


def _attention_projections(s: _Scope, c: int) -> None:
    for name in ("q", "k", "v", "o"):
        s(name).linear(c, c)
    s("norm_q")._add("weight", (c,), "norm")
    s("norm_k")._add("weight", (c,), "norm")


def _wan_dit(s: _Scope, depth: int = _DEPTH) -> None:
    c = _WIDTH
    # Conv3d's weight (c, 16, 1, 2, 2) with its two channel axes folded, the 4-D form GGUF holds.
    s("patch_embedding")._add("weight", (c * _LATENT, *_PATCH), "weight")
    s("patch_embedding")._add("bias", (c,), "bias")
    s("text_embedding.0").linear(c, _TEXT)
    s("text_embedding.2").linear(c, c)
    s("time_embedding.0").linear(c, _FREQ)
    s("time_embedding.2").linear(c, c)
    s("time_projection.1").linear(6 * c, c)
    for n in range(depth):
        block = s(f"blocks.{n}")
        block._add("modulation", (1, 6, c), "bias")
        _attention_projections(block("self_attn"), c)
        block("norm3").norm(c)
        _attention_projections(block("cross_attn"), c)
        block("ffn.0").linear(_FFN, c)
        block("ffn.2").linear(c, _FFN)
    s("head")._add("modulation", (1, 2, c), "bias")
    s("head.head").linear(_LATENT * math.prod(_PATCH), c)


def write_wan_t2v(path, *, seed: int = 0, depth: int = _DEPTH) -> Path:
    """Wan 2.1 T2V 1.3B's transformer, 30 blocks, as q4_0 GGUF (0.8 GB); ``depth`` other than 30 or 40
    makes a file the engine cannot load (2 blocks: 58 MB)."""
    return write_gguf(path, _lazy(partial(_wan_dit, depth=depth), seed, np.float32))


def write_wan_vae(path, *, seed: int = 0) -> Path:
    """The Wan 2.1 VAE (254 MB)."""
    write_safetensors(path, _lazy(_wan_vae, seed), _METADATA)
    return Path(path)
