"""Random-weight LLM-conditioned families as the files the engine's docs have people download: Flux.2
klein and dev (docs/flux2.md), Ovis Image and ERNIE-Image (docs/ovis_image.md, docs/ernie_image.md).

* the transformer in Black Forest Labs' layout (``double_blocks.N.img_attn.qkv.weight``,
  ``single_blocks.N.linear1.weight``, the shared ``double_stream_modulation_img.lin.weight`` ..., no
  prefix, no biases): klein as BFL's safetensors, dev as city96's q4_0 GGUF. flux.hpp reads the depths,
  the width (``txt_in.weight``) and the head size (``key_norm.scale``, which must stay 128: the four
  rotary axes of 32) from the file. klein has 2 + 2 blocks of 256 (two heads; the real 4B: 5 + 20 of
  3072). The engine tells dev from klein by a 48th single block alone, so dev keeps its 48 single
  blocks, with one double block, at a width of 128 (one head, 10 M parameters; the real one: 8 + 48 of
  6144): over 512 text tokens, 48 blocks of 256 took about 5 s a step on two shared, busy cores.
* the language model: klein's Qwen3 as Comfy-Org's split safetensors (transformers' names,
  ``model.layers.N.self_attn.q_proj.weight`` ...), dev's Mistral Small 3.2 as unsloth's GGUF (llama.cpp's
  names, ``blk.N.attn_q.weight`` ...). llm.hpp fixes the heads (32 query and 8 key/value heads of 128) but
  reads the layer count, width, feed-forward size and vocabulary from the file. The conditioner
  concatenates the outputs of layers 9, 18 and 27 (klein) or 10, 20 and 30 (dev), so the files keep that
  many layers, 27 and 30, at a width of 256: the DiT's text width is then 3 x 256, as it is 3 x the
  LLM's width in the real files. The vocabularies stay the tokenizers' (151,936 and 131,072): the
  special tokens index the embedding.
* ``flux2_ae.safetensors``: the Flux.2 VAE in BFL's names (LDM's ``encoder.down.N.block.M`` with 32
  latent channels, ``encoder.quant_conv``, ``decoder.post_quant_conv`` and the latents' batch-norm
  statistics ``bn.running_mean``/``bn.running_var``, which the engine skips). Its sizes are fixed by
  auto_encoder_kl.hpp (84 M parameters); float16. ERNIE-Image uses it too.
* Ovis Image: the transformer (flux.hpp: Flux.1's blocks with a gated MLP, ``img_mlp.gate_proj``, which
  names the family, and ``txt_norm``), 2 + 2 blocks of 256; Ovis 2.5's Qwen3 in transformers' names with
  2 layers (Ovis reads the last layer's normed states, so no depth is needed); Flux.1's 16-channel VAE
  (models_dit.py).
* ERNIE-Image: the transformer in the engine's (and Comfy-Org's) names, 2 layers of 384 (ernie_image.hpp
  reads every size); Ministral 3 3B as unsloth's GGUF at its real 26 layers (the conditioner takes the
  25th layer's states), 256 wide.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from . import models
from .models import _METADATA, _Param, _params, _Scope, _vae, RandomTensor, write_safetensors
from .models_dit import write_gguf

__all__ = [
    "klein_weights", "write_dev", "write_ernie", "write_klein", "write_ministral", "write_mistral", "write_ovis", "write_ovis_llm",
    "write_qwen3", "write_vae",
]

_HEAD, _MLP_RATIO, _TIME_FREQS = 128, 3, 256
_PATCHED_LATENT = 128  # 32 latent channels in 2x2 patches
_LLM_WIDTH, _LLM_HEADS, _LLM_KV_HEADS, _LLM_FFN = 256, 32, 8, 512
_TEXT_LAYERS = 3  # the conditioner stacks three of the LLM's hidden states
_QWEN3_VOCAB = 151936


# --- the transformer (flux.hpp with the Flux.2 parameters) -----------------------------------------


def _qk_norm(s: _Scope) -> None:
    s("query_norm")._add("scale", (_HEAD,), "norm")
    s("key_norm")._add("scale", (_HEAD,), "norm")


def _attention(s: _Scope, c: int, bias: bool = False) -> None:
    s("qkv").linear(3 * c, c, bias=bias)
    _qk_norm(s("norm"))
    s("proj").linear(c, c, bias=bias)


def _dit(s: _Scope, c: int, double: int, single: int, guidance: bool) -> None:
    mlp = _MLP_RATIO * c
    s("img_in").linear(c, _PATCHED_LATENT, bias=False)
    s("txt_in").linear(c, _TEXT_LAYERS * _LLM_WIDTH, bias=False)
    s("time_in.in_layer").linear(c, _TIME_FREQS, bias=False)
    s("time_in.out_layer").linear(c, c, bias=False)
    if guidance:  # dev's distilled guidance; klein has none
        s("guidance_in.in_layer").linear(c, _TIME_FREQS, bias=False)
        s("guidance_in.out_layer").linear(c, c, bias=False)
    # One modulation for all blocks of a kind, instead of one per block as in Flux.1.
    s("double_stream_modulation_img.lin").linear(6 * c, c, bias=False)
    s("double_stream_modulation_txt.lin").linear(6 * c, c, bias=False)
    s("single_stream_modulation.lin").linear(3 * c, c, bias=False)
    for n in range(double):
        block = s(f"double_blocks.{n}")
        for stream in ("img", "txt"):
            _attention(block(f"{stream}_attn"), c)
            block(f"{stream}_mlp.0").linear(2 * mlp, c, bias=False)  # SwiGLU: gate and value
            block(f"{stream}_mlp.2").linear(c, mlp, bias=False)
    for n in range(single):
        block = s(f"single_blocks.{n}")
        block("linear1").linear(3 * c + 2 * mlp, c, bias=False)
        block("linear2").linear(c, c + mlp, bias=False)
        _qk_norm(block("norm"))
    s("final_layer.linear").linear(_PATCHED_LATENT, c, bias=False)
    s("final_layer.adaLN_modulation.1").linear(2 * c, c, bias=False)


def _klein(s: _Scope) -> None:
    _dit(s, 256, double=2, single=2, guidance=False)


def _dev(s: _Scope) -> None:
    _dit(s, 128, double=1, single=48, guidance=True)


# --- Ovis Image (flux.hpp with the Ovis parameters) and Ernie Image (ernie_image.hpp) ---------------


def _ovis(s: _Scope) -> None:
    """Flux.1's blocks with biases and per-block modulation, a gated MLP (``img_mlp.gate_proj`` ...,
    which names the family), the LLM's states RMS-normed (``txt_norm``), no pooled vector, no guidance."""
    c, mlp, latent = 256, 4 * 256, 64  # 16 channels in 2x2 patches
    s("img_in").linear(c, latent)
    s("txt_norm")._add("scale", (_LLM_WIDTH,), "norm")
    s("txt_in").linear(c, _LLM_WIDTH)
    s("time_in.in_layer").linear(c, _TIME_FREQS)
    s("time_in.out_layer").linear(c, c)
    for n in range(2):
        block = s(f"double_blocks.{n}")
        for stream in ("img", "txt"):
            block(f"{stream}_mod.lin").linear(6 * c, c)
            _attention(block(f"{stream}_attn"), c, bias=True)
            block(f"{stream}_mlp.gate_proj").linear(mlp, c)
            block(f"{stream}_mlp.up_proj").linear(mlp, c)
            block(f"{stream}_mlp.down_proj").linear(c, mlp)
    for n in range(2):
        block = s(f"single_blocks.{n}")
        block("linear1").linear(3 * c + 2 * mlp, c)
        block("linear2").linear(c, c + mlp)
        _qk_norm(block("norm"))
        block("modulation.lin").linear(3 * c, c)
    s("final_layer.linear").linear(latent, c)
    s("final_layer.adaLN_modulation.1").linear(2 * c, c)


def _ernie(s: _Scope) -> None:
    """ERNIE-Image's single-stream DiT: 2 layers of 384 (three heads of 128, the rotary axes' sum; the
    real one: 36 of 4096). ernie_image.hpp reads the width, head size, feed-forward size, text width and
    depth from the file; the text width must differ from the DiT's, or the engine builds no
    ``text_proj`` (as the real 3072 and 4096 do)."""
    c, ffn = 384, 3 * 384
    s("x_embedder.proj").conv(c, _PATCHED_LATENT, 1)
    s("text_proj").linear(c, _LLM_WIDTH, bias=False)
    s("time_embedding.linear_1").linear(c, c)
    s("time_embedding.linear_2").linear(c, c)
    s("adaLN_modulation.1").linear(6 * c, c)
    for n in range(2):
        layer = s(f"layers.{n}")
        layer("adaLN_sa_ln")._add("weight", (c,), "norm")
        attention = layer("self_attention")
        for proj in ("to_q", "to_k", "to_v", "to_out.0"):
            attention(proj).linear(c, c, bias=False)
        attention("norm_q")._add("weight", (_HEAD,), "norm")
        attention("norm_k")._add("weight", (_HEAD,), "norm")
        layer("adaLN_mlp_ln")._add("weight", (c,), "norm")
        layer("mlp.gate_proj").linear(ffn, c, bias=False)
        layer("mlp.up_proj").linear(ffn, c, bias=False)
        layer("mlp.linear_fc2").linear(c, ffn, bias=False)
    s("final_norm.linear").linear(2 * c, c)
    s("final_linear").linear(_PATCHED_LATENT, c)


# --- the language models (llm.hpp) ---------------------------------------------------------------

# A decoder layer's modules and the model's ends in transformers' names, and in llama.cpp's.
_LLAMA_CPP = {
    "embed_tokens": "token_embd", "norm": "output_norm", "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def _llm(s: _Scope, layers: int, vocab: int, qk_norm: bool, llama_cpp: bool) -> None:
    """A Llama-style language model (Qwen3 has RMS-normed q and k) without its output head, which the
    engine never reads: in transformers' names (``model.layers.N.self_attn.q_proj``, Comfy-Org's split
    safetensors) or llama.cpp's (``blk.N.attn_q``, the GGUFs)."""
    c, q, kv, ffn = _LLM_WIDTH, _LLM_HEADS * _HEAD, _LLM_KV_HEADS * _HEAD, _LLM_FFN
    name = _LLAMA_CPP.get if llama_cpp else lambda n: n
    root = s if llama_cpp else s("model")
    root(name("embed_tokens")).embedding(vocab, c)
    for n in range(layers):
        layer = root(f"blk.{n}" if llama_cpp else f"layers.{n}")
        layer(name("input_layernorm"))._add("weight", (c,), "norm")
        layer(name("post_attention_layernorm"))._add("weight", (c,), "norm")
        for module, cout, cin in (("self_attn.q_proj", q, c), ("self_attn.k_proj", kv, c), ("self_attn.v_proj", kv, c),
                                  ("self_attn.o_proj", c, q), ("mlp.gate_proj", ffn, c), ("mlp.up_proj", ffn, c),
                                  ("mlp.down_proj", c, ffn)):
            layer(name(module)).linear(cout, cin, bias=False)
        if qk_norm:
            layer(name("self_attn.q_norm"))._add("weight", (_HEAD,), "norm")
            layer(name("self_attn.k_norm"))._add("weight", (_HEAD,), "norm")
    root(name("norm"))._add("weight", (c,), "norm")


# --- the VAE ----------------------------------------------------------------------------------------

_VAE_LATENT = 32


def _vae32(s: _Scope) -> None:
    """models.py's LDM VAE with 32 latent channels, its 1x1 quant convolutions inside the encoder and
    decoder as BFL names them, and the batch-norm statistics of the 2x2-patched latents."""
    four: list[_Param] = []
    _vae(_Scope(four, s.original, s.diffusers))
    renamed = {"quant_conv": "encoder.quant_conv", "post_quant_conv": "decoder.post_quant_conv"}
    for p in four:
        module, _, leaf = p.original.rpartition(".")
        module = renamed.get(module, module)
        cin = {"encoder.quant_conv": 2, "decoder.post_quant_conv": 1, "decoder.conv_in": 1}.get(module)
        cout = {"encoder.quant_conv": 2, "decoder.post_quant_conv": 1, "encoder.conv_out": 2}.get(module)
        shape = list(p.shape)
        if cout:
            shape[0] = cout * _VAE_LATENT
        if cin and leaf == "weight":
            shape[1] = cin * _VAE_LATENT
        shape = tuple(shape)
        s.params.append(p._replace(original=f"{module}.{leaf}", shape=shape, diffusers_shape=shape))
    s("bn")._add("running_mean", (4 * _VAE_LATENT,), "bias")
    s("bn")._add("running_var", (4 * _VAE_LATENT,), "norm")


def _lazy(build, seed: int, dtype) -> dict[str, RandomTensor]:
    return {p.original: RandomTensor(p.original, p.shape, dtype, p.init, seed) for p in _params("", build)}


# --- Files ------------------------------------------------------------------------------------------


def write_klein(path, *, seed: int = 0) -> Path:
    """Flux.2 klein's transformer, 2 + 2 blocks of 256, float16 safetensors (6 MB)."""
    write_safetensors(path, _lazy(_klein, seed, np.float16), _METADATA)
    return Path(path)


def write_dev(path, *, seed: int = 0) -> Path:
    """Flux.2 dev's transformer, 1 + 48 blocks of 128, as q4_0 GGUF (6 MB)."""
    return write_gguf(path, _lazy(_dev, seed, np.float32))


def write_qwen3(path, *, seed: int = 0) -> Path:
    """Qwen3 (klein's), 27 layers of 256, float16 safetensors in transformers' names (240 MB)."""
    write_safetensors(path, _lazy(lambda s: _llm(s, 27, _QWEN3_VOCAB, True, False), seed, np.float16), _METADATA)
    return Path(path)


def write_mistral(path, *, seed: int = 0) -> Path:
    """Mistral Small 3.2's language model, 30 layers of 256, as q4_0 GGUF in llama.cpp's names (70 MB)."""
    return write_gguf(path, _lazy(lambda s: _llm(s, 30, 131072, False, True), seed, np.float32))


def write_ovis(path, *, seed: int = 0) -> Path:
    """Ovis-Image's transformer, 2 + 2 blocks of 256, float16 safetensors (19 MB)."""
    write_safetensors(path, _lazy(_ovis, seed, np.float16), _METADATA)
    return Path(path)


def write_ovis_llm(path, *, seed: int = 0) -> Path:
    """Ovis 2.5's language model (Qwen3), 2 layers of 256, float16 safetensors: Ovis reads the last
    layer's normed states, so no depth is needed (the real one: 28 of 2048) (86 MB)."""
    write_safetensors(path, _lazy(lambda s: _llm(s, 2, _QWEN3_VOCAB, True, False), seed, np.float16), _METADATA)
    return Path(path)


def write_ernie(path, *, seed: int = 0) -> Path:
    """ERNIE-Image's transformer, 2 layers of 384, float16 safetensors (11 MB)."""
    write_safetensors(path, _lazy(_ernie, seed, np.float16), _METADATA)
    return Path(path)


def write_ministral(path, *, seed: int = 0) -> Path:
    """Ministral 3 3B, 26 layers of 256 (the real 26 of 3072: the conditioner takes the 25th layer's
    states), as q4_0 GGUF in llama.cpp's names (63 MB)."""
    return write_gguf(path, _lazy(lambda s: _llm(s, 26, 131072, False, True), seed, np.float32))


def write_vae(path, *, seed: int = 0) -> Path:
    """The Flux.2 VAE (also ERNIE-Image's) in float16 (168 MB)."""
    write_safetensors(path, _lazy(_vae32, seed, np.float16), _METADATA)
    return Path(path)


def klein_weights(*, seed: int = 0) -> dict[str, np.ndarray]:
    """write_klein's tensors in BFL's names, as float32 holding the float16 values written."""
    return {name: np.asarray(tensor).astype(np.float32) for name, tensor in _lazy(_klein, seed, np.float16).items()}


# --- Fixtures ---------------------------------------------------------------------------------------


def _folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from . import models_dit
    from .conftest import _cache_dir

    return _cache_dir(tmp_path_factory, models, models_dit, sys.modules[__name__])


@pytest.fixture(scope="session")
def flux2_vae(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .conftest import built

    return built(request, _folder(tmp_path_factory) / "flux2_ae.safetensors", write_vae)


def _files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, **parts) -> dict[str, Path]:
    """Each part, a (file name, writer) pair or a built file, as the Generator argument it is passed as."""
    from .conftest import built

    folder = _folder(tmp_path_factory)
    return {arg: part if isinstance(part, Path) else built(request, folder / part[0], part[1])
            for arg, part in parts.items()}


@pytest.fixture(scope="session")
def flux2_klein_files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                      flux2_vae: Path) -> dict[str, Path]:
    """Flux.2 klein as docs/flux2.md has it downloaded: transformer, Qwen3, VAE (420 MB)."""
    return _files(request, tmp_path_factory, diffusion_model=("flux-2-klein-4b.safetensors", write_klein),
                  llm=("qwen_3_4b.safetensors", write_qwen3), vae=flux2_vae)


@pytest.fixture(scope="session")
def flux2_dev_files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                    flux2_vae: Path) -> dict[str, Path]:
    """Flux.2 dev as docs/flux2.md has it downloaded: q4_0 GGUF transformer and Mistral, VAE (245 MB)."""
    return _files(request, tmp_path_factory, diffusion_model=("flux2-dev-q4_0.gguf", write_dev),
                  llm=("mistral-small-3.2-24b-q4_0.gguf", write_mistral), vae=flux2_vae)


@pytest.fixture(scope="session")
def ovis_image_files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Ovis-Image as docs/ovis_image.md has it downloaded: transformer, Ovis 2.5, Flux.1's VAE (270 MB)."""
    from . import models_dit

    return _files(request, tmp_path_factory, diffusion_model=("ovis_image.safetensors", write_ovis),
                  llm=("ovis_2.5.safetensors", write_ovis_llm), vae=("ae.safetensors", models_dit.write_vae))


@pytest.fixture(scope="session")
def ernie_image_files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                      flux2_vae: Path) -> dict[str, Path]:
    """ERNIE-Image as docs/ernie_image.md has it downloaded: transformer, Ministral 3 3B, the Flux.2 VAE
    (240 MB)."""
    return _files(request, tmp_path_factory, diffusion_model=("ernie-image.safetensors", write_ernie),
                  llm=("ministral-3-3b-q4_0.gguf", write_ministral), vae=flux2_vae)
