"""Random-weight Qwen-Image, as the three files people download (the engine's docs/qwen_image.md).

* ``qwen-image-q4_0.gguf``: the MMDiT as QuantStack's GGUF quantizations name it (diffusers' names, no
  prefix: ``transformer_blocks.N.img_mod.1.weight``, ``txt_in.weight``, ...). qwen_image.hpp counts the
  ``transformer_blocks`` but fixes the width (24 heads of 128 = 3072) and the text width (3584, the
  LLM's): one block of 0.34 G parameters instead of 60.
* ``qwen2.5-vl-7b-q4_0.gguf``: Qwen2.5-VL-7B's language model in llama.cpp's names (``token_embd``,
  ``blk.N.attn_q`` ...), as mradermacher's GGUFs are, without the vision tower (only Qwen-Image Edit
  reads it) and the unused output head. llm.hpp reads the layer count, width, vocabulary and feed-forward
  size from the file but fixes the heads (28 of 128, 4 for k/v): the width must stay 3584, and the
  vocabulary 152,064 (the tokenizer's special tokens are numbered past 151,643). Two layers with a
  feed-forward of 2048 instead of 28 of 18,944; the embedding is most of it (545 M parameters).
* ``qwen_image_vae.safetensors``: the Wan 2.1 VAE in its original names (``encoder.downsamples.N``,
  ``decoder.upsamples.N``, ``conv1``/``conv2``), as in Comfy-Org's split files. wan.hpp fixes every size
  (127 M parameters); float16, as shipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from .models import _METADATA, _params, _Scope, RandomTensor, write_safetensors
from .models_dit import _q4_0, dequantize_q4_0, write_gguf

__all__ = ["dit_weights", "write_dit", "write_llm", "write_vae", "LLM_WIDTH"]

_WIDTH, _HEAD, _BLOCKS = 3072, 128, 1
_LATENT, _PATCH, _TIME_FREQS = 16, 2, 256
LLM_WIDTH, LLM_VOCAB = 3584, 152064  # Qwen2.5-VL-7B's
_LLM_HEAD, _LLM_KV_HEADS, _LLM_LAYERS, _LLM_FFN = 128, 4, 2, 2048


# --- the transformer (qwen_image.hpp) -------------------------------------------------------------


def _attention(s: _Scope, c: int) -> None:
    for proj in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out"):
        s(proj).linear(c, c)
    for norm in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
        s(norm)._add("weight", (_HEAD,), "norm")


def _dit(s: _Scope) -> None:
    c = _WIDTH
    s("img_in").linear(c, _PATCH * _PATCH * _LATENT)
    s("txt_norm")._add("weight", (LLM_WIDTH,), "norm")
    s("txt_in").linear(c, LLM_WIDTH)
    s("time_text_embed.timestep_embedder.linear_1").linear(c, _TIME_FREQS)
    s("time_text_embed.timestep_embedder.linear_2").linear(c, c)
    for n in range(_BLOCKS):
        block = s(f"transformer_blocks.{n}")
        _attention(block("attn"), c)
        for stream in ("img", "txt"):  # the LayerNorms have no affine parameters
            block(f"{stream}_mod.1").linear(6 * c, c)
            block(f"{stream}_mlp.net.0.proj").linear(4 * c, c)
            block(f"{stream}_mlp.net.2").linear(c, 4 * c)
    s("norm_out.linear").linear(2 * c, c)
    s("proj_out").linear(_PATCH * _PATCH * _LATENT, c)


# --- the language model (llm.hpp), in llama.cpp's names --------------------------------------------


def _llm(s: _Scope) -> None:
    c, kv = LLM_WIDTH, _LLM_KV_HEADS * _LLM_HEAD
    for n in range(_LLM_LAYERS):
        block = s(f"blk.{n}")
        block("attn_norm")._add("weight", (c,), "norm")
        block("attn_q").linear(c, c)
        block("attn_k").linear(kv, c)
        block("attn_v").linear(kv, c)
        block("attn_output").linear(c, c, bias=False)
        block("ffn_norm")._add("weight", (c,), "norm")
        block("ffn_gate").linear(_LLM_FFN, c, bias=False)
        block("ffn_up").linear(_LLM_FFN, c, bias=False)
        block("ffn_down").linear(c, _LLM_FFN, bias=False)
    s("output_norm")._add("weight", (c,), "norm")


class _Embedding(NamedTuple):
    """The token embedding, drawn in row chunks from its own generator: at 545 M values it is larger
    than models.py's pool, and in float32 alone it would take 2.2 GB."""

    shape: tuple[int, int]
    seed: int

    def chunks(self, rows: int = 8192) -> Iterator[np.ndarray]:
        rng = np.random.default_rng([self.seed, 7])
        for start in range(0, self.shape[0], rows):
            n = min(rows, self.shape[0] - start)
            yield rng.standard_normal((n, self.shape[1]), dtype=np.float32) * np.float32(0.02)


# --- the VAE (wan.hpp's WanVAE, Wan 2.1) ------------------------------------------------------------

_VAE_DIM, _VAE_MULT, _VAE_RES = 96, (1, 2, 4, 4), 2


def _conv3d(s: _Scope, cout: int, cin: int, k: tuple[int, int, int] = (3, 3, 3)) -> None:
    s._add("weight", (cout, cin, *k), "weight")
    s._add("bias", (cout,), "bias")


def _rms(s: _Scope, c: int, images: bool = False) -> None:
    """Wan's RMS_norm: a gamma shaped to broadcast over (t,) h, w, no bias."""
    s._add("gamma", (c, 1, 1) if images else (c, 1, 1, 1), "norm")


def _residual(s: _Scope, cin: int, cout: int) -> None:
    _rms(s("residual.0"), cin)
    _conv3d(s("residual.2"), cout, cin)
    _rms(s("residual.3"), cout)
    _conv3d(s("residual.6"), cout, cout)
    if cin != cout:
        _conv3d(s("shortcut"), cout, cin, (1, 1, 1))


def _middle(s: _Scope, c: int) -> None:
    _residual(s("middle.0"), c, c)
    _rms(s("middle.1.norm"), c, images=True)
    s("middle.1.to_qkv").conv(3 * c, c, 1)
    s("middle.1.proj").conv(c, c, 1)
    _residual(s("middle.2"), c, c)


def _resample(s: _Scope, c: int, up: bool, temporal: bool) -> None:
    s("resample.1").conv(c // 2 if up else c, c)
    if temporal:
        _conv3d(s("time_conv"), 2 * c if up else c, c, (3, 1, 1))


def _encoder(s: _Scope, z: int) -> None:
    dims = [_VAE_DIM * m for m in (1, *_VAE_MULT)]
    _conv3d(s("conv1"), dims[0], 3)
    index = 0
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
        for _ in range(_VAE_RES):
            _residual(s(f"downsamples.{index}"), cin, cout)
            cin, index = cout, index + 1
        if i != len(_VAE_MULT) - 1:
            _resample(s(f"downsamples.{index}"), cout, up=False, temporal=i > 0)
            index += 1
    _middle(s, dims[-1])
    _rms(s("head.0"), dims[-1])
    _conv3d(s("head.2"), z, dims[-1])


def _decoder(s: _Scope, z: int) -> None:
    dims = [_VAE_DIM * m for m in (_VAE_MULT[-1], *_VAE_MULT[::-1])]
    _conv3d(s("conv1"), dims[0], z)
    _middle(s, dims[0])
    index = 0
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
        if i > 0:  # the upsampling convolution before halved the channels
            cin //= 2
        for _ in range(_VAE_RES + 1):
            _residual(s(f"upsamples.{index}"), cin, cout)
            cin, index = cout, index + 1
        if i != len(_VAE_MULT) - 1:
            _resample(s(f"upsamples.{index}"), cout, up=True, temporal=i < 2)
            index += 1
    _rms(s("head.0"), dims[-1])
    _conv3d(s("head.2"), 3, dims[-1])


def _vae(s: _Scope) -> None:
    _encoder(s("encoder"), 2 * _LATENT)
    _conv3d(s("conv1"), 2 * _LATENT, 2 * _LATENT, (1, 1, 1))
    _conv3d(s("conv2"), _LATENT, _LATENT, (1, 1, 1))
    _decoder(s("decoder"), _LATENT)


def _lazy(build, seed: int, dtype=np.float32) -> dict[str, RandomTensor]:
    return {p.original: RandomTensor(p.original, p.shape, dtype, p.init, seed) for p in _params("", build)}


# --- Files ------------------------------------------------------------------------------------------


def write_dit(path, *, seed: int = 0) -> Path:
    """The transformer, one block, as q4_0 GGUF (214 MB)."""
    return write_gguf(path, _lazy(_dit, seed))


def write_llm(path, *, seed: int = 0) -> Path:
    """Qwen2.5-VL's language model, two layers, as q4_0 GGUF (364 MB)."""
    tensors = {"token_embd.weight": _Embedding((LLM_VOCAB, LLM_WIDTH), seed), **_lazy(_llm, seed)}
    return write_gguf(path, tensors)


def write_vae(path, *, seed: int = 0) -> Path:
    """The Wan 2.1 VAE in float16 (254 MB)."""
    write_safetensors(path, _lazy(_vae, seed, np.float16), _METADATA)
    return Path(path)


def dit_weights(*, seed: int = 0) -> dict[str, np.ndarray]:
    """write_dit's tensors as the engine multiplies by them (float32): the matrices decoded from their
    q4_0 blocks (ggml's dequantize_row_q4_0), the vectors as written. Their names are diffusers'."""
    weights = {}
    for name, tensor in _lazy(_dit, seed).items():
        values = np.asarray(tensor)
        if values.ndim == 2:
            values = dequantize_q4_0(_q4_0(values), values.shape)
        weights[name] = values
    return weights
