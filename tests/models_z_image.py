"""Random-weight Z-Image Turbo, as the three files people download (the engine's docs/z_image.md).

* ``z_image_turbo-q4_0.gguf`` (``diffusion_model=``): the transformer in the names of ComfyUI's
  ``z_image_turbo_bf16.safetensors`` (Lumina 2's, no prefix: ``x_embedder``, ``cap_embedder.1``,
  ``layers.N.attention.qkv``, ``noise_refiner.N``, ``context_refiner.N``, ``x_pad_token`` ...), the pad
  tokens 1-D as leejet's GGUFs hold them. z_image.hpp reads no size from the file: 30 layers, 2 noise- and 2
  caption-refiner blocks, all of width 3840 (30 heads of 128), 6.15 G parameters, 3.46 GB as q4_0.
  Quantizing that many random floats in numpy would take minutes, so the matrices are drawn as q4_0
  blocks directly (``_Q4_0Blocks``). Layers 1-29 and the second refiner block of each kind have zero
  ``attention_norm2`` and ``ffn_norm2`` weights, so they add nothing to their input (x + gate *
  norm2(...) = x): the engine runs all 34 blocks, and the result is what diffusers'
  ``ZImageTransformer2DModel(n_layers=1, n_refiner_layers=1)`` computes from the other blocks'
  weights (``dit_weights``, 2.2 GB in float32) instead of 25 GB.
* ``qwen_3_4b-q4_0.gguf`` (``llm=``): Qwen3-4B's language model in llama.cpp's names (``token_embd``,
  ``blk.N.attn_q``, ``blk.N.attn_q_norm`` ...), as unsloth's GGUFs, without the output head (tied to
  the embedding in Qwen3-4B). llm.hpp reads the layer count, width, vocabulary and feed-forward size
  but fixes the heads (32 of 128, 8 for k/v): the width must stay 2560 (the transformer's caption
  width) and the vocabulary 151,936 (the tokenizer's special tokens index it). Two layers with a
  feed-forward of 1024 instead of 36 of 9728. Z-Image reads the output of the LLM's layer 35 (the
  second to last); with two layers there is none, and llm.hpp returns the final norm's output.
* ``ae.safetensors`` (``vae=``): Flux's 16-channel VAE (models_dit.write_vae).
"""

from __future__ import annotations

import math
import sys
import zlib
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import pytest

from . import models, models_dit
from .models import RandomTensor
from .models_dit import dequantize_q4_0, write_gguf

__all__ = ["dit_weights", "write_dit", "write_llm", "z_image_files", "CAPTION_WIDTH"]

# z_image.hpp's ZImageParams.
_WIDTH, _HEAD, _FFN, _LAYERS, _REFINERS = 3840, 128, 10240, 30, 2
_LATENT, _PATCH, _ADALN, _TIME_MID, _TIME_FREQS = 16, 2, 256, 1024, 256
CAPTION_WIDTH = 2560  # Qwen3-4B's width
_LLM_VOCAB, _LLM_HEADS, _LLM_KV_HEADS, _LLM_LAYERS, _LLM_FFN = 151936, 32, 8, 2, 1024


class _Q4_0Blocks(NamedTuple):
    """A matrix drawn as ggml q4_0 blocks: per 32 values an f16 scale of random sign, then 16 random
    bytes (two 4-bit values each, read as q - 8). The scale gives the values a standard deviation of
    ``std``. Blocks are drawn a slice of rows at a time, from a generator seeded by the name."""

    name: str
    shape: tuple[int, int]
    std: float
    seed: int

    def chunks(self, rows: int = 1024) -> Iterator[bytes]:
        rng = np.random.default_rng([self.seed, zlib.crc32(self.name.encode())])
        rms = math.sqrt(np.mean((np.arange(16) - 8.0) ** 2))  # of q - 8 for q uniform in 0..15
        scale = np.array([self.std / rms], "<f2").view(np.uint8)
        per_row = self.shape[1] // 32
        for start in range(0, self.shape[0], rows):
            n = min(rows, self.shape[0] - start) * per_row
            blocks = np.empty((n, 18), np.uint8)
            blocks[:, 0] = scale[0]
            blocks[:, 1] = scale[1] | (np.frombuffer(rng.bytes(n), np.uint8) & 0x80)  # f16's sign bit
            blocks[:, 2:] = np.frombuffer(rng.bytes(16 * n), np.uint8).reshape(n, 16)
            yield blocks.tobytes()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return dequantize_q4_0(b"".join(self.chunks()), self.shape).astype(dtype or np.float32, copy=False)


def _matrix(out: dict, name: str, n_out: int, n_in: int, seed: int, std: float | None = None) -> None:
    out[name] = _Q4_0Blocks(name, (n_out, n_in), std or 1 / math.sqrt(n_in), seed)  # N(0, 1/fan_in) by default


def _vector(out: dict, name: str, n: int, init: str, seed: int) -> None:
    out[name] = RandomTensor(name, (n,), np.float32, init, seed)


# --- the transformer (z_image.hpp) -------------------------------------------------------------------


def _block(out: dict, name: str, modulated: bool, adds: bool, seed: int) -> None:
    c = _WIDTH
    _matrix(out, f"{name}.attention.qkv.weight", 3 * c, c, seed)  # 30 query, key and value heads
    _matrix(out, f"{name}.attention.out.weight", c, c, seed)
    _vector(out, f"{name}.attention.q_norm.weight", _HEAD, "norm", seed)
    _vector(out, f"{name}.attention.k_norm.weight", _HEAD, "norm", seed)
    _matrix(out, f"{name}.feed_forward.w1.weight", _FFN, c, seed)
    _matrix(out, f"{name}.feed_forward.w2.weight", c, _FFN, seed)
    _matrix(out, f"{name}.feed_forward.w3.weight", _FFN, c, seed)
    for norm in ("attention_norm1", "ffn_norm1", "attention_norm2", "ffn_norm2"):
        _vector(out, f"{name}.{norm}.weight", c, "norm", seed)
        if norm.endswith("2") and not adds:  # the block's two residual branches end in these norms
            out[f"{name}.{norm}.weight"] = np.zeros(c, np.float32)
    if modulated:
        _matrix(out, f"{name}.adaLN_modulation.0.weight", 4 * c, _ADALN, seed)
        _vector(out, f"{name}.adaLN_modulation.0.bias", 4 * c, "bias", seed)


def _dit(seed: int) -> dict:
    c, out = _WIDTH, {}
    _matrix(out, "x_embedder.weight", c, _PATCH * _PATCH * _LATENT, seed)
    _vector(out, "x_embedder.bias", c, "bias", seed)
    _vector(out, "x_pad_token", c, "embedding", seed)
    _vector(out, "cap_pad_token", c, "embedding", seed)
    _matrix(out, "t_embedder.mlp.0.weight", _TIME_MID, _TIME_FREQS, seed)
    _vector(out, "t_embedder.mlp.0.bias", _TIME_MID, "bias", seed)
    _matrix(out, "t_embedder.mlp.2.weight", _ADALN, _TIME_MID, seed)
    _vector(out, "t_embedder.mlp.2.bias", _ADALN, "bias", seed)
    _vector(out, "cap_embedder.0.weight", CAPTION_WIDTH, "norm", seed)
    _matrix(out, "cap_embedder.1.weight", c, CAPTION_WIDTH, seed)
    _vector(out, "cap_embedder.1.bias", c, "bias", seed)
    for n in range(_REFINERS):
        _block(out, f"noise_refiner.{n}", modulated=True, adds=n == 0, seed=seed)
        _block(out, f"context_refiner.{n}", modulated=False, adds=n == 0, seed=seed)
    for n in range(_LAYERS):
        _block(out, f"layers.{n}", modulated=True, adds=n == 0, seed=seed)
    _matrix(out, "final_layer.linear.weight", _PATCH * _PATCH * _LATENT, c, seed)
    _vector(out, "final_layer.linear.bias", _PATCH * _PATCH * _LATENT, "bias", seed)
    _matrix(out, "final_layer.adaLN_modulation.1.weight", c, _ADALN, seed)
    _vector(out, "final_layer.adaLN_modulation.1.bias", c, "bias", seed)
    return out


def _diffusers_name(name: str) -> str:
    for ours, theirs in (("x_embedder.", "all_x_embedder.2-1."), ("final_layer.", "all_final_layer.2-1."),
                         ("attention.out.", "attention.to_out.0."), ("attention.q_norm.", "attention.norm_q."),
                         ("attention.k_norm.", "attention.norm_k.")):
        name = name.replace(ours, theirs)
    return name


def dit_weights(*, seed: int = 0) -> dict[str, np.ndarray]:
    """The blocks of write_dit's file that add to their input, as diffusers'
    ``ZImageTransformer2DModel(n_layers=1, n_refiner_layers=1)`` names them, in float32 as the engine
    multiplies by them (the q4_0 matrices decoded). The fused qkv projection is cut into to_q, to_k
    and to_v; the pad tokens get diffusers' leading axis."""
    weights = {}
    for name, tensor in _dit(seed).items():
        parts = name.split(".")
        if parts[0] in ("layers", "noise_refiner", "context_refiner") and parts[1] != "0":
            continue
        values = np.asarray(tensor, np.float32)
        if name.endswith("attention.qkv.weight"):
            for i, proj in enumerate(("to_q", "to_k", "to_v")):
                weights[name.replace("qkv", proj)] = values[i * _WIDTH : (i + 1) * _WIDTH]
        else:
            weights[_diffusers_name(name)] = values[None] if name.endswith("pad_token") else values
    return weights


# --- the language model (llm.hpp's Qwen3), in llama.cpp's names ---------------------------------------


def _llm(seed: int) -> dict:
    c, q, kv, out = CAPTION_WIDTH, _LLM_HEADS * _HEAD, _LLM_KV_HEADS * _HEAD, {}
    _matrix(out, "token_embd.weight", _LLM_VOCAB, c, seed, std=0.02)
    for n in range(_LLM_LAYERS):
        b = f"blk.{n}"
        _vector(out, f"{b}.attn_norm.weight", c, "norm", seed)
        _matrix(out, f"{b}.attn_q.weight", q, c, seed)
        _matrix(out, f"{b}.attn_k.weight", kv, c, seed)
        _matrix(out, f"{b}.attn_v.weight", kv, c, seed)
        _vector(out, f"{b}.attn_q_norm.weight", _HEAD, "norm", seed)
        _vector(out, f"{b}.attn_k_norm.weight", _HEAD, "norm", seed)
        _matrix(out, f"{b}.attn_output.weight", c, q, seed)
        _vector(out, f"{b}.ffn_norm.weight", c, "norm", seed)
        _matrix(out, f"{b}.ffn_gate.weight", _LLM_FFN, c, seed)
        _matrix(out, f"{b}.ffn_up.weight", _LLM_FFN, c, seed)
        _matrix(out, f"{b}.ffn_down.weight", c, _LLM_FFN, seed)
    _vector(out, "output_norm.weight", c, "norm", seed)
    return out


# --- Files and fixture ----------------------------------------------------------------------------------


def write_dit(path, *, seed: int = 0) -> Path:
    """Z-Image Turbo's transformer as q4_0 GGUF (3.46 GB)."""
    return write_gguf(path, _dit(seed))


def write_llm(path, *, seed: int = 0) -> Path:
    """Qwen3-4B's language model, two layers, as q4_0 GGUF (257 MB)."""
    return write_gguf(path, _llm(seed))


@pytest.fixture(scope="session")
def z_image_files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three files of Z-Image Turbo (3.9 GB), built once; without SDCPP_TEST_MODELS, deleted
    after the last test that uses them."""
    from .conftest import _cache_dir, built

    folder = _cache_dir(tmp_path_factory, models, models_dit, sys.modules[__name__])
    return {
        "diffusion_model": built(request, folder / "z_image_turbo-q4_0.gguf", write_dit),
        "llm": built(request, folder / "qwen_3_4b-q4_0.gguf", write_llm),
        "vae": built(request, folder / "ae.safetensors", models_dit.write_vae),
    }
