"""Random-weight Flux.1 variants (Flux Fill, Flux Control, Flex.2, Chroma Radiance), Anima, and their fixtures.

The engine tells these apart by what the transformer file holds (``get_sd_version``, src/model.cpp),
and the loader fixes the width of the input projection by that family (``FluxRunner``, src/flux.hpp):

* Flux Fill (``flux1-fill-dev``): Flux.1 dev whose ``img_in`` takes 384 values per 2x2 patch: the
  noisy latent (64), the latent of the masked picture (64) and the mask at pixel resolution, each
  8x8 pixel block as 64 channels (256).
* Flux Control (``flux1-depth-dev``, ``flux1-canny-dev``): ``img_in`` of 128, the latent and the
  control picture's latent.
* Flex.2 (ostris' ``Flex.2-preview``): ``img_in`` of 196, the latent, the masked picture's latent
  (64), the mask at latent resolution (4) and the control picture's latent (64).
* Chroma Radiance (``Chroma1-Radiance``): a pixel-space Chroma. No VAE: a 16x16 patch convolution of
  the RGB pixels (``img_in_patch``) feeds the blocks, and a per-patch MLP whose weights the blocks'
  output generates (``nerf_*``) draws the pixels. Chroma's modulation comes from one network
  (``distilled_guidance_layer``, 5 layers of 5120, fixed by flux.hpp: 0.27 G parameters) instead of
  per-block ``*_mod`` layers, so the file is q4_0 GGUF, as silveroxides' quantizations are (about
  150 MB). Its text encoder is T5-XXL alone, not written (docs/dit-families.md says why).

* Anima (circlestone-labs' ``anima-preview``): a Cosmos-Predict2 transformer (``net.blocks.N``, width
  2048 fixed by anima.hpp, which counts the blocks: here 1 of 28) whose text comes from Qwen3-0.6B
  through an LLM adapter (``net.llm_adapter``, 6 blocks of 1024, fixed) that attends from T5 token
  embeddings to the LLM's states. q4_0 GGUF, as Bedovyy's quantizations. Its text encoder,
  ``qwen_3_06b_base`` (``llm=``), in llama.cpp's names as mradermacher's GGUFs: at its real size
  (28 layers of 1024, 0.6 G parameters), because llm.hpp gives a Qwen3 16 heads only when it has 28
  layers (32 otherwise, which would change the projections' shapes). Its VAE is Qwen-Image's (Wan
  2.1), written by models_qwen_image.

The Flux ones are models_dit's Flux.1 dev (2 + 2 blocks of width 256, BFL's names) with only
``img_in`` widened, and they share its ``ae.safetensors`` and ``clip_l.safetensors``.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from . import models, models_dit, models_qwen_image
from .models import _Scope, write_safetensors
from .models_dit import _flux, _flux_attention, _lazy, _METADATA, write_gguf

__all__ = ["write_anima", "write_chroma_radiance", "write_flux_variant", "write_qwen3"]

# The width of img_in for each variant (FluxRunner in src/flux.hpp; get_sd_version reads it back).
IMG_IN = {"Flux Fill": 384, "Flux Control": 128, "Flex.2": 196}

_WIDTH, _MLP = 256, 1024  # as models_dit's Flux
_T5_DIM, _PATCH = 4096, 16
_APPROX_IN, _APPROX_WIDTH, _APPROX_LAYERS = 64, 5120, 5  # ChromaApproximator
_NERF_WIDTH, _NERF_RATIO, _NERF_DEPTH, _NERF_FREQS = 64, 4, 4, 8  # ChromaRadianceParams


def _flux_variant(in_channels: int):
    def build(s: _Scope) -> None:
        params: list = []
        _flux(_Scope(params, s.original, s.diffusers))
        for p in params:
            if p.original.endswith("img_in.weight"):
                p = p._replace(shape=(_WIDTH, in_channels), diffusers_shape=(_WIDTH, in_channels))
            s.params.append(p)

    return build


def _chroma_radiance(s: _Scope) -> None:
    """Chroma1-Radiance's names (lodestones' code: RMSNorm weights are ``scale``), 2 + 2 blocks."""
    c = _WIDTH
    s("img_in_patch").conv(c, 3, _PATCH)
    s("txt_in").linear(c, _T5_DIM)
    approx = s("distilled_guidance_layer")
    approx("in_proj").linear(_APPROX_WIDTH, _APPROX_IN)
    for n in range(_APPROX_LAYERS):
        approx(f"norms.{n}")._add("scale", (_APPROX_WIDTH,), "norm")
        approx(f"layers.{n}.in_layer").linear(_APPROX_WIDTH, _APPROX_WIDTH)
        approx(f"layers.{n}.out_layer").linear(_APPROX_WIDTH, _APPROX_WIDTH)
    approx("out_proj").linear(c, _APPROX_WIDTH)
    for n in range(2):
        block = s(f"double_blocks.{n}")
        for stream in ("img", "txt"):  # no *_mod: the approximator modulates every block
            _flux_attention(block(f"{stream}_attn"), c)
            block(f"{stream}_mlp.0").linear(_MLP, c)
            block(f"{stream}_mlp.2").linear(c, _MLP)
    for n in range(2):
        block = s(f"single_blocks.{n}")
        block("linear1").linear(3 * c + _MLP, c)
        block("linear2").linear(c, c + _MLP)
        block("norm.query_norm")._add("scale", (128,), "norm")
        block("norm.key_norm")._add("scale", (128,), "norm")
    s("nerf_image_embedder.embedder.0").linear(_NERF_WIDTH, 3 + _NERF_FREQS * _NERF_FREQS)
    for n in range(_NERF_DEPTH):
        s(f"nerf_blocks.{n}.param_generator").linear(3 * _NERF_WIDTH * _NERF_WIDTH * _NERF_RATIO, c)
        s(f"nerf_blocks.{n}.norm")._add("scale", (_NERF_WIDTH,), "norm")
    s("nerf_final_layer_conv.norm")._add("scale", (_NERF_WIDTH,), "norm")
    s("nerf_final_layer_conv.conv").conv(3, _NERF_WIDTH)


_ANIMA_WIDTH, _ANIMA_BLOCKS, _ADALN = 2048, 1, 256  # AnimaNet, TransformerBlock's adaln_lora_dim
_ADAPTER_WIDTH, _ADAPTER_HEAD, _ADAPTER_BLOCKS, _T5_VOCAB = 1024, 64, 6, 32128  # LLMAdapter
_QWEN3_WIDTH, _QWEN3_LAYERS, _QWEN3_FFN, _QWEN3_VOCAB = 1024, 28, 3072, 151936  # Qwen3-0.6B
_QWEN3_HEADS, _QWEN3_KV_HEADS, _HEAD = 16, 8, 128


def _anima_attention(s: _Scope, c: int, context: int, head: int, out: str = "output_proj") -> None:
    s("q_proj").linear(c, c, bias=False)
    s("k_proj").linear(c, context, bias=False)
    s("v_proj").linear(c, context, bias=False)
    s("q_norm")._add("weight", (head,), "norm")
    s("k_norm")._add("weight", (head,), "norm")
    s(out).linear(c, c, bias=False)


def _ada_ln(s: _Scope, c: int, chunks: int) -> None:
    s("1").linear(_ADALN, c, bias=False)
    s("2").linear(chunks * c, _ADALN, bias=False)


def _anima(s: _Scope) -> None:
    """anima-preview's names (``net.`` prefix, as in its split file), one transformer block."""
    c, net = _ANIMA_WIDTH, s("net")
    net("x_embedder.proj.1").linear(c, (16 + 1) * 4, bias=False)  # 2x2 patches of the latent and a padding mask
    net("t_embedder.1.linear_1").linear(c, c, bias=False)
    net("t_embedder.1.linear_2").linear(3 * c, c, bias=False)
    net("t_embedding_norm")._add("weight", (c,), "norm")
    for n in range(_ANIMA_BLOCKS):
        block = net(f"blocks.{n}")
        for part in ("self_attn", "cross_attn", "mlp"):
            _ada_ln(block(f"adaln_modulation_{part}"), c, 3)
        _anima_attention(block("self_attn"), c, c, _HEAD)
        _anima_attention(block("cross_attn"), c, _ADAPTER_WIDTH, _HEAD)
        block("mlp.layer1").linear(4 * c, c, bias=False)
        block("mlp.layer2").linear(c, 4 * c, bias=False)
    _ada_ln(net("final_layer.adaln_modulation"), c, 2)
    net("final_layer.linear").linear(4 * 16, c, bias=False)
    a, adapter = _ADAPTER_WIDTH, net("llm_adapter")
    adapter("embed")._add("weight", (_T5_VOCAB, a), "embedding")
    for n in range(_ADAPTER_BLOCKS):
        block = adapter(f"blocks.{n}")
        for norm in ("norm_self_attn", "norm_cross_attn", "norm_mlp"):
            block(norm)._add("weight", (a,), "norm")
        _anima_attention(block("self_attn"), a, a, _ADAPTER_HEAD, "o_proj")
        _anima_attention(block("cross_attn"), a, a, _ADAPTER_HEAD, "o_proj")
        block("mlp.0").linear(4 * a, a)
        block("mlp.2").linear(a, 4 * a)
    adapter("out_proj").linear(a, a)
    adapter("norm")._add("weight", (a,), "norm")


def _qwen3(s: _Scope) -> None:
    c, q, kv, ffn = _QWEN3_WIDTH, _QWEN3_HEADS * _HEAD, _QWEN3_KV_HEADS * _HEAD, _QWEN3_FFN
    norms = {"attn_norm": c, "attn_q_norm": _HEAD, "attn_k_norm": _HEAD, "ffn_norm": c}  # q/k: per head
    linears = {"attn_q": (q, c), "attn_k": (kv, c), "attn_v": (kv, c), "attn_output": (c, q),
               "ffn_gate": (ffn, c), "ffn_up": (ffn, c), "ffn_down": (c, ffn)}  # no biases in Qwen3
    for n in range(_QWEN3_LAYERS):
        block = s(f"blk.{n}")
        for name, width in norms.items():
            block(name)._add("weight", (width,), "norm")
        for name, shape in linears.items():
            block(name).linear(*shape, bias=False)
    s("output_norm")._add("weight", (c,), "norm")


def write_flux_variant(path, family: str, *, seed: int = 0) -> Path:
    """The transformer of ``family`` (a key of IMG_IN) in BFL's layout, 2 + 2 blocks (11 MB)."""
    write_safetensors(path, _lazy(_flux_variant(IMG_IN[family]), seed), _METADATA)
    return Path(path)


def write_chroma_radiance(path, *, seed: int = 0) -> Path:
    """Chroma Radiance's transformer, 2 + 2 blocks, as q4_0 GGUF (about 150 MB)."""
    return write_gguf(path, _lazy(_chroma_radiance, seed, np.float32))


def write_anima(path, *, seed: int = 0) -> Path:
    """Anima's transformer with one block, and its LLM adapter, as q4_0 GGUF."""
    return write_gguf(path, _lazy(_anima, seed, np.float32))


def write_qwen3(path, *, seed: int = 0) -> Path:
    """Qwen3-0.6B (base) as q4_0 GGUF in llama.cpp's names, without the output head (tied to the embedding)."""
    embedding = models_qwen_image._Embedding((_QWEN3_VOCAB, _QWEN3_WIDTH), seed)
    return write_gguf(path, {"token_embd.weight": embedding, **_lazy(_qwen3, seed, np.float32)})


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def flux_variants_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .conftest import _cache_dir

    return _cache_dir(tmp_path_factory, models, models_dit, models_qwen_image, sys.modules[__name__])


def _variant_files(request, flux_files: dict[str, Path], folder: Path, family: str, name: str) -> dict[str, Path]:
    from .conftest import built

    write = partial(write_flux_variant, family=family)
    return {**flux_files, "diffusion_model": built(request, folder / name, write)}


@pytest.fixture(scope="session")
def flux_fill_files(request, flux_files: dict[str, Path], flux_variants_dir: Path) -> dict[str, Path]:
    """Flux Fill's transformer with models_dit's VAE and CLIP-L."""
    return _variant_files(request, flux_files, flux_variants_dir, "Flux Fill", "flux1-fill-dev.safetensors")


@pytest.fixture(scope="session")
def flux_control_files(request, flux_files: dict[str, Path], flux_variants_dir: Path) -> dict[str, Path]:
    """Flux Control's (flux1-depth-dev's) transformer with models_dit's VAE and CLIP-L."""
    return _variant_files(request, flux_files, flux_variants_dir, "Flux Control", "flux1-depth-dev.safetensors")


@pytest.fixture(scope="session")
def flex2_files(request, flux_files: dict[str, Path], flux_variants_dir: Path) -> dict[str, Path]:
    """Flex.2's transformer with models_dit's VAE and CLIP-L."""
    return _variant_files(request, flux_files, flux_variants_dir, "Flex.2", "flex.2-preview.safetensors")


@pytest.fixture(scope="session")
def chroma_radiance_file(request, flux_variants_dir: Path) -> Path:
    """Chroma Radiance's transformer alone: it needs no VAE and no CLIP-L (T5-XXL: not written)."""
    from .conftest import built

    return built(request, flux_variants_dir / "chroma1-radiance-q4_0.gguf", write_chroma_radiance)


@pytest.fixture(scope="session")
def anima_files(request, flux_variants_dir: Path) -> dict[str, Path]:
    """Anima as the three files of the engine's docs/anima.md: transformer, Qwen3-0.6B, Qwen-Image's VAE."""
    from .conftest import built

    return {
        "diffusion_model": built(request, flux_variants_dir / "anima-q4_0.gguf", write_anima),
        "llm": built(request, flux_variants_dir / "qwen_3_06b_base-q4_0.gguf", write_qwen3),
        "vae": built(request, flux_variants_dir / "qwen_image_vae.safetensors", models_qwen_image.write_vae),
    }
