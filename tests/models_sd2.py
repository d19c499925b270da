"""Random-weight Stable Diffusion 2.1 768-v, on the machinery of models.py.

Two layouts, as in models.py:

* ``"original"``: what ``v2-1_768-ema-pruned.safetensors`` holds (``model.diffusion_model.*``,
  ``first_stage_model.*``, and OpenCLIP ViT-H/14's text tower in open_clip's own names under
  ``cond_stage_model.model.*``, all 24 layers);
* ``"diffusers-unet"``, ``"diffusers-vae"``, ``"diffusers-text_encoder"``: the three weight files of
  the diffusers folder, whose ``CLIPTextModel`` has 23 layers: SD 2.x conditions on the penultimate
  layer, so the conversion drops the last one.

The engine builds ViT-H with 24 layers whatever the file holds (src/clip.hpp), and its UNet from the
detected version (src/unet.hpp), so widths and depths are the real ones: 1024-wide context, 64-channel
attention heads, Linear proj_in/proj_out. Single file in float16: 2.6 GB (UNet 866 M parameters,
ViT-H 354 M, VAE 84 M).

**v-prediction.** The engine decides it for SD 2.x by one UNet call at t = 999 on a latent of 0.5 with
a context of 0.5: ``mean(output - latent) < -1`` means v (``is_using_v_parameterization_for_sd2`` in
src/stable-diffusion.cpp); a trained 768-v model outputs about ``-x0`` there. Random weights give an
output near 0 (eps), so the 768-v fixture sets the UNet's output bias (``out.2.bias``) to -2, which
is what makes a real v model pass that test; ``v_bias=None`` keeps it random.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .models import _MODEL_INDEX as _SD15_MODEL_INDEX
from .models import _SCHEDULER_CONFIG as _SD15_SCHEDULER_CONFIG
from .models import (
    _METADATA,
    _VAE_CONFIG,
    _UNET_CONFIG,
    _Components,
    _ldm_unet,
    _Scope,
    _tensors,
    _vae,
    _write_json,
    write_safetensors,
)

__all__ = ["write_sd2_single_file", "write_sd2_diffusers", "sd2_tensors", "V_BIAS"]

_CONTEXT_DIM, _DIM, _MLP, _LAYERS, _HEADS = 1024, 1024, 4096, 24, 16
_VOCAB, _POSITIONS = 49408, 77
V_BIAS = -2.0  # the 768-v fixture's UNet output bias (see the module's docstring)


def _unet(s: _Scope) -> None:
    _ldm_unet(s, mult=(1, 2, 4, 4), depths=(1, 1, 1, 0), mid_depth=1, context_dim=_CONTEXT_DIM, linear=True)


def _open_clip_h(s: _Scope) -> None:
    """OpenCLIP ViT-H/14's text tower (open_clip names) and transformers' CLIPTextModel (23 layers)."""
    # models_sdxl._open_clip_text is the same tower at bigG's sizes; sharing it would change that file
    # and so rebuild the cached 6.9 GB SDXL fixture (its cache key is its source).
    c = _DIM
    s("token_embedding", "text_model.embeddings.token_embedding").embedding(_VOCAB, c)
    s.param("positional_embedding", "text_model.embeddings.position_embedding.weight", (_POSITIONS, c), "embedding")
    for n in range(_LAYERS):
        layer = s(f"transformer.resblocks.{n}", f"text_model.encoder.layers.{n}")
        first = len(s.params)
        layer("ln_1", "layer_norm1").norm(c)
        layer.param("attn.in_proj_weight", None, (3 * c, c), "weight")
        layer.param("attn.in_proj_bias", None, (3 * c,), "bias")
        for i, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            rows = ("rows", i * c, (i + 1) * c)
            layer.cut("attn.in_proj_weight", f"self_attn.{proj}.weight", (3 * c, c), "weight", rows)
            layer.cut("attn.in_proj_bias", f"self_attn.{proj}.bias", (3 * c,), "bias", rows)
        layer("attn.out_proj", "self_attn.out_proj").linear(c, c)
        layer("ln_2", "layer_norm2").norm(c)
        layer("mlp.c_fc", "mlp.fc1").linear(_MLP, c)
        layer("mlp.c_proj", "mlp.fc2").linear(c, _MLP)
        if n == _LAYERS - 1:  # the layer diffusers' conversion drops
            s.params[first:] = [p._replace(diffusers=None) for p in s.params[first:]]
    s("ln_final", "text_model.final_layer_norm").norm(c)
    s.param("text_projection", None, (c, c), "weight")  # only for the pooled output, which SD 2.x never uses
    s.param("logit_scale", None, (), "logit_scale")


# diffusers component -> (its prefix in the single-file checkpoint, builder, file in the diffusers folder)
_COMPONENTS: _Components = {
    "unet": ("model.diffusion_model", _unet, "diffusion_pytorch_model.safetensors"),
    "vae": ("first_stage_model", _vae, "diffusion_pytorch_model.safetensors"),
    "text_encoder": ("cond_stage_model.model", _open_clip_h, "model.safetensors"),
}
_OUT_BIAS = {"original": "model.diffusion_model.out.2.bias", "diffusers-unet": "conv_out.bias"}


def sd2_tensors(layout: str, dtype=np.float16, seed: int = 0, v_bias: Optional[float] = V_BIAS) -> dict:
    """Names and lazy values of one SD 2.1 layout ("original", "diffusers-unet", ...), in a stable order."""
    tensors: dict = _tensors(_COMPONENTS, layout, dtype, seed)
    if v_bias is not None and layout in _OUT_BIAS:
        tensors[_OUT_BIAS[layout]] = np.full(4, v_bias, dtype)
    return tensors


# ---------------------------------------------------------------------------------------------------
# Files: the configs of stabilityai/stable-diffusion-2-1

_DIFFUSERS_VERSION = "0.10.0.dev0"

_SD2_UNET_CONFIG = {
    **_UNET_CONFIG,
    "_diffusers_version": _DIFFUSERS_VERSION,
    "attention_head_dim": [5, 10, 20, 20],  # diffusers' name for the number of heads: 64 channels each
    "cross_attention_dim": _CONTEXT_DIM,
    "dual_cross_attention": False,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "sample_size": 96,
    "upcast_attention": True,
    "use_linear_projection": True,
}

_TEXT_ENCODER_CONFIG = {
    "architectures": ["CLIPTextModel"],
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_size": _DIM,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": _MLP,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": _POSITIONS,
    "model_type": "clip_text_model",
    "num_attention_heads": _HEADS,
    "num_hidden_layers": _LAYERS - 1,
    "pad_token_id": 1,
    "projection_dim": 512,
    "transformers_version": "4.25.0.dev0",
    "vocab_size": _VOCAB,
}

_SCHEDULER_CONFIG = {
    **_SD15_SCHEDULER_CONFIG,
    "_class_name": "DDIMScheduler",
    "_diffusers_version": _DIFFUSERS_VERSION,
    "prediction_type": "v_prediction",
}

_MODEL_INDEX = {**_SD15_MODEL_INDEX, "_diffusers_version": _DIFFUSERS_VERSION, "scheduler": ["diffusers", "DDIMScheduler"]}


def write_sd2_single_file(path, *, dtype=np.float16, seed: int = 0, v_bias: Optional[float] = V_BIAS) -> Path:
    """An original-layout SD 2.1 768-v checkpoint (about 2.6 GB in float16) at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, sd2_tensors("original", dtype, seed, v_bias), _METADATA)
    return path


def write_sd2_diffusers(folder, *, dtype=np.float16, seed: int = 0, v_bias: Optional[float] = V_BIAS) -> Path:
    """A diffusers SD 2.1 folder (model_index.json, unet/, vae/, text_encoder/, scheduler/) at ``folder``."""
    folder = Path(folder)
    configs = {
        "unet": _SD2_UNET_CONFIG,
        "vae": {**_VAE_CONFIG, "sample_size": 768},
        "text_encoder": {**_TEXT_ENCODER_CONFIG, "torch_dtype": np.dtype(dtype).name},
        "scheduler/scheduler_config.json": _SCHEDULER_CONFIG,
        "model_index.json": _MODEL_INDEX,
    }
    for component, (_, _, filename) in _COMPONENTS.items():
        _write_json(folder / component / "config.json", configs.pop(component))
        tensors = sd2_tensors(f"diffusers-{component}", dtype, seed, v_bias)
        write_safetensors(folder / component / filename, tensors, _METADATA)
    for name, config in configs.items():
        _write_json(folder / name, config)
    return folder
