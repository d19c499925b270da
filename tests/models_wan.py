"""Random-weight Wan 2.1 (text to video), on the machinery of models.py and models_dit.py.

Two files, as ComfyUI's repackaged release names them (no prefix):

* ``wan2.1-t2v-1.3b-q4_0.gguf``: the Wan 2.1 T2V 1.3B transformer (``blocks.N.self_attn.q.weight``,
  ``blocks.N.cross_attn.norm_k.weight``, ``head.modulation`` ...) as q4_0 GGUF, the form most people
  download it in. wan.hpp counts the blocks in the file but then accepts only 30 (the 1.3B models,
  width 1536) or 40 (the 14B ones, width 5120) and aborts on any other count, so this is the real
  size: 1.42 G parameters, 0.8 GB. The 5-D patch embedding is stored 4-D (output and input channels
  folded together), as ggml and city96's GGUF conversions hold it.
* ``wan_2.1_vae.safetensors``: the Wan 2.1 causal 3-D VAE, which Qwen-Image uses too: written by
  models_qwen_image.write_vae (sizes fixed in wan.hpp, 127 M parameters, 254 MB in float16).

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

from .models import _Scope
from .models_dit import _lazy, write_gguf
from .models_qwen_image import write_vae as write_wan_vae

__all__ = ["write_wan_t2v", "write_wan_vae"]

# wan.hpp's WanRunner for 30 blocks (Wan2.1-T2V-1.3B).
_DEPTH, _WIDTH, _FFN, _FREQ, _TEXT, _LATENT = 30, 1536, 8960, 256, 4096, 16
_PATCH = (1, 2, 2)  # frames, height, width


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

