"""Random-weight diffusion transformers (Flux.1, SD3.5), on the machinery of models.py.

Each is a set of separate component files, as they are downloaded:

* ``flux1-dev.safetensors`` (and as q4_0 GGUF): Black Forest Labs' layout (``double_blocks.N.img_attn.qkv.weight``,
  ``single_blocks.N.linear1.weight``, ``guidance_in.*`` ..., no prefix). The engine (flux.hpp) reads
  the number of double and single blocks, the hidden size (``txt_in.weight``) and the head size
  (``key_norm.scale``) from the file, so this one has 2 + 2 blocks of width 256 (two heads of 128, the
  size the rotary embedding's axes add up to); the real one has 19 + 38 of 3072.
* ``sd3.5-mmdit.q4_0.gguf``: the MMDiT of SD3.5 Large (RMS-normed q/k, ``joint_blocks.N.x_block``,
  ``context_block``) as city96's GGUF quantizations name it (no prefix). mmdit.hpp counts the blocks
  but starts from 24 and sets the width to 64 per block, so no file can be smaller than 24 blocks of
  1536 (2.0 G parameters, SD3.5 Medium's size): written as q4_0 (1.1 GB), the form people download.
* ``ae.safetensors``: the 16-channel VAE both use (Flux's ``ae.safetensors``; SD3's is the same
  network), LDM names without a prefix, no ``quant_conv``.
* ``clip_l.safetensors``: CLIP ViT-L's text model as ComfyUI ships it (``text_model.*``).

Not written: T5-XXL (t5.hpp fixes its 24 layers of 4096, 4.8 G parameters, 2.7 GB even as q4_0) and
OpenCLIP bigG (``clip_g``, 695 M parameters, fixed in clip.hpp). The engine runs Flux and SD3 without
them, feeding zeros in their place (conditioner.hpp), so the fixtures leave them out.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from .models import _METADATA, _clip_text, _Param, _params, _Scope, _vae, RandomTensor, write_safetensors

__all__ = ["dequantize_q4_0", "write_clip_l", "write_flux", "write_flux_gguf", "write_gguf", "write_sd3", "write_vae"]

_LATENT = 16
_FLUX_WIDTH, _FLUX_HEAD, _FLUX_DOUBLE, _FLUX_SINGLE = 256, 128, 2, 2
_T5_DIM, _CLIP_L_POOLED, _TIME_FREQS = 4096, 768, 256
_MMDIT_DEPTH, _MMDIT_HEAD, _POS_EMBED = 24, 64, 192
_MMDIT_WIDTH = _MMDIT_DEPTH * _MMDIT_HEAD
_POOLED_LG = 768 + 1280  # CLIP-L's and bigG's pooled outputs



def _vae16(s: _Scope) -> None:
    """models.py's VAE with 16 latent channels and without the 1x1 quant convolutions."""
    four: list[_Param] = []
    _vae(_Scope(four, s.original, s.diffusers))
    for p in four:
        leaf = p.original.removeprefix(f"{s.original}.") if s.original else p.original
        if "quant_conv" in leaf:
            continue
        shape = p.shape
        if leaf.startswith("encoder.conv_out"):
            shape = (2 * _LATENT, *shape[1:])
        elif leaf == "decoder.conv_in.weight":
            shape = (shape[0], _LATENT, *shape[2:])
        s.params.append(p._replace(shape=shape, diffusers_shape=shape))


def _mlp_embedder(s: _Scope, cin: int, c: int) -> None:
    s("in_layer").linear(c, cin)
    s("out_layer").linear(c, c)


def _flux_attention(s: _Scope, c: int) -> None:
    s("qkv").linear(3 * c, c)
    s("norm.query_norm")._add("scale", (_FLUX_HEAD,), "norm")
    s("norm.key_norm")._add("scale", (_FLUX_HEAD,), "norm")
    s("proj").linear(c, c)


def _flux(s: _Scope) -> None:
    c, mlp = _FLUX_WIDTH, 4 * _FLUX_WIDTH
    s("img_in").linear(c, 4 * _LATENT)  # 2x2 patches of the latent
    s("txt_in").linear(c, _T5_DIM)
    _mlp_embedder(s("time_in"), _TIME_FREQS, c)
    _mlp_embedder(s("vector_in"), _CLIP_L_POOLED, c)
    _mlp_embedder(s("guidance_in"), _TIME_FREQS, c)  # dev's distilled guidance; schnell has none
    for n in range(_FLUX_DOUBLE):
        block = s(f"double_blocks.{n}")
        for stream in ("img", "txt"):
            block(f"{stream}_mod.lin").linear(6 * c, c)
            _flux_attention(block(f"{stream}_attn"), c)
            block(f"{stream}_mlp.0").linear(mlp, c)
            block(f"{stream}_mlp.2").linear(c, mlp)
    for n in range(_FLUX_SINGLE):
        block = s(f"single_blocks.{n}")
        block("linear1").linear(3 * c + mlp, c)
        block("linear2").linear(c, c + mlp)
        block("norm.query_norm")._add("scale", (_FLUX_HEAD,), "norm")
        block("norm.key_norm")._add("scale", (_FLUX_HEAD,), "norm")
        block("modulation.lin").linear(3 * c, c)
    s("final_layer.linear").linear(4 * _LATENT, c)
    s("final_layer.adaLN_modulation.1").linear(2 * c, c)


def _mmdit_half(s: _Scope, c: int, pre_only: bool) -> None:
    """One stream of a joint block (mmdit.hpp's DismantledBlock), q/k RMS-normed as in SD3.5."""
    s("attn.qkv").linear(3 * c, c)
    s("attn.ln_q")._add("weight", (_MMDIT_HEAD,), "norm")
    s("attn.ln_k")._add("weight", (_MMDIT_HEAD,), "norm")
    if not pre_only:
        s("attn.proj").linear(c, c)
        s("mlp.fc1").linear(4 * c, c)
        s("mlp.fc2").linear(c, 4 * c)
    s("adaLN_modulation.1").linear((2 if pre_only else 6) * c, c)


def _mmdit(s: _Scope) -> None:
    c = _MMDIT_WIDTH
    s._add("pos_embed", (1, _POS_EMBED * _POS_EMBED, c), "embedding")
    s("x_embedder.proj").conv(c, _LATENT, 2)
    s("t_embedder.mlp.0").linear(c, _TIME_FREQS)
    s("t_embedder.mlp.2").linear(c, c)
    s("y_embedder.mlp.0").linear(c, _POOLED_LG)
    s("y_embedder.mlp.2").linear(c, c)
    s("context_embedder").linear(c, _T5_DIM)
    for n in range(_MMDIT_DEPTH):
        # The last block's text stream only feeds the image stream's attention: no output projection.
        _mmdit_half(s(f"joint_blocks.{n}.context_block"), c, pre_only=n == _MMDIT_DEPTH - 1)
        _mmdit_half(s(f"joint_blocks.{n}.x_block"), c, pre_only=False)
    s("final_layer.linear").linear(4 * _LATENT, c)
    s("final_layer.adaLN_modulation.1").linear(2 * c, c)


def _lazy(build, seed: int, dtype=np.float16) -> dict[str, RandomTensor]:
    return {p.original: RandomTensor(p.original, p.shape, dtype, p.init, seed) for p in _params("", build)}


# --- GGUF ---------------------------------------------------------------------------------------------

_GGUF_F32, _GGUF_F16, _GGUF_Q4_0 = 0, 1, 2
_Q4_0_BLOCK, _GGUF_ALIGN = 32, 32


def _q4_0(values: np.ndarray) -> bytes:
    """ggml's block_q4_0: per 32 values an f16 scale, then 16 bytes holding values j (low nibble)
    and j + 16 (high nibble) as 4-bit integers around 8 (ggml's quantize_row_q4_0_ref)."""
    blocks = values.astype(np.float32).reshape(-1, _Q4_0_BLOCK)
    extreme = blocks[np.arange(len(blocks)), np.abs(blocks).argmax(axis=1)]
    scale = extreme / -8
    inverse = np.divide(1, scale, out=np.zeros_like(scale), where=scale != 0)
    q = np.clip((blocks * inverse[:, None] + 8.5).astype(np.int32), 0, 15).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    out = np.empty((len(blocks), 18), np.uint8)
    out[:, :2] = scale.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = packed
    return out.tobytes()


def dequantize_q4_0(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 values q4_0 blocks stand for (ggml's dequantize_row_q4_0): what the engine multiplies by."""
    blocks = np.frombuffer(data, np.uint8).reshape(-1, 18)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    values = np.concatenate([blocks[:, 2:] & 15, blocks[:, 2:] >> 4], axis=1).astype(np.float32)
    values -= 8  # in place: Z-Image's blocks decode to GBs
    values *= scale
    return values.reshape(shape)


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def write_gguf(path, tensors: dict[str, RandomTensor]) -> Path:
    """A GGUF (version 3) file: matrices whose rows are whole q4_0 blocks as q4_0, other tensors of
    over one dimension as f16, vectors as f32 (the split city96's quantizations use)."""
    path = Path(path)
    plan = []
    for name, tensor in tensors.items():
        shape = tuple(tensor.shape)
        if len(shape) == 2 and shape[1] % _Q4_0_BLOCK == 0:
            kind, nbytes = _GGUF_Q4_0, math.prod(shape) // _Q4_0_BLOCK * 18
        elif len(shape) > 1:
            kind, nbytes = _GGUF_F16, 2 * math.prod(shape)
        else:
            kind, nbytes = _GGUF_F32, 4 * math.prod(shape)
        plan.append((name, tensor, shape, kind, nbytes))
    header = b"GGUF" + struct.pack("<IQQ", 3, len(plan), 0)
    offset = 0
    for name, _, shape, kind, nbytes in plan:
        dims = shape[::-1]  # ggml's ne: fastest-varying first
        header += _gguf_string(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, kind, offset)
        offset += nbytes + (-nbytes % _GGUF_ALIGN)
    with open(path, "wb") as f:
        f.write(header + b"\0" * (-len(header) % _GGUF_ALIGN))
        for _, tensor, _, kind, nbytes in plan:
            # A tensor too large to hold at once (an LLM's embedding) gives its rows a slice at a time;
            # one drawn as q4_0 blocks (models_z_image) gives them already encoded, as bytes.
            for values in tensor.chunks() if hasattr(tensor, "chunks") else [np.asarray(tensor)]:
                if isinstance(values, bytes):
                    f.write(values)
                elif kind == _GGUF_Q4_0:
                    f.write(_q4_0(values))
                else:
                    f.write(values.astype("<f2" if kind == _GGUF_F16 else "<f4").tobytes())
            f.write(b"\0" * (-nbytes % _GGUF_ALIGN))
    return path


# --- Files --------------------------------------------------------------------------------------------


def write_vae(path, *, seed: int = 0) -> Path:
    """The 16-channel VAE (``ae.safetensors``, 168 MB)."""
    write_safetensors(path, _lazy(_vae16, seed), _METADATA)
    return Path(path)


def write_clip_l(path, *, seed: int = 0) -> Path:
    """CLIP ViT-L's text model as ComfyUI ships ``clip_l.safetensors`` (246 MB)."""
    write_safetensors(path, _lazy(_clip_text, seed), _METADATA)
    return Path(path)


def write_flux(path, *, seed: int = 0) -> Path:
    """Flux.1 dev's transformer in BFL's layout, 2 + 2 blocks (11 MB)."""
    write_safetensors(path, _lazy(_flux, seed), _METADATA)
    return Path(path)


def write_flux_gguf(path, *, seed: int = 0) -> Path:
    """The same transformer as q4_0 GGUF, the form Flux is mostly downloaded in (4 MB)."""
    return write_gguf(path, _lazy(_flux, seed, np.float32))


def write_sd3(path, *, seed: int = 0) -> Path:
    """SD3.5's MMDiT at 24 blocks as q4_0 GGUF (1.1 GB)."""
    return write_gguf(path, _lazy(_mmdit, seed, np.float32))
