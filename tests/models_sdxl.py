"""Random-weight Stable Diffusion XL base 1.0, on the machinery of models.py.

Two layouts, as in models.py:

* ``"original"``: what ``sd_xl_base_1.0.safetensors`` holds (``model.diffusion_model.*``,
  ``first_stage_model.*``, ``conditioner.embedders.0.transformer.text_model.*`` for CLIP ViT-L and
  ``conditioner.embedders.1.model.*`` for OpenCLIP ViT-bigG in open_clip's own names);
* ``"diffusers-unet"``, ``"diffusers-vae"``, ``"diffusers-text_encoder"``,
  ``"diffusers-text_encoder_2"``: the four weight files of the diffusers folder.

OpenCLIP keeps each layer's query, key and value in one ``attn.in_proj_weight`` (3 x 1280 rows) and
applies ``text_projection`` as ``x @ text_projection``; transformers splits the first into
``q_proj``/``k_proj``/``v_proj`` and holds the second's transpose as the Linear ``text_projection.weight``.
Those diffusers tensors are cut from the original ones, so both layouts hold the same values.

Sizes in float16: single file 6.9 GB (UNet 2.57 G parameters, bigG 695 M, CLIP-L 123 M, VAE 84 M).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .models import (
    _TEXT_ENCODER_CONFIG,
    _TIME_DIM,
    _UNET_CHANNELS,
    _VAE_CONFIG,
    _clip_text,
    _Components,
    _ldm_unet,
    _Scope,
    _tensors,
    _vae,
    _write_diffusers,
    _write_single_file,
    RandomTensor,
)

__all__ = ["LAYOUTS", "sdxl_tensors", "write_sdxl_single_file", "write_sdxl_diffusers"]

_UNET_MULT, _DEPTHS, _MID_DEPTH, _CONTEXT_DIM = (1, 2, 4), (0, 2, 10), 10, 2048
# The "vector" conditioning: bigG's pooled text embedding (1280) and six sizes (original size, crop
# top-left, target size), each as a 256-wide timestep embedding.
_ADDITION_TIME_EMBED_DIM = 256
_ADM_IN_CHANNELS = 1280 + 6 * _ADDITION_TIME_EMBED_DIM  # 2816

_BIGG_DIM, _BIGG_MLP, _BIGG_LAYERS, _BIGG_HEADS = 1280, 5120, 32, 20
_CLIP_VOCAB, _CLIP_POSITIONS = 49408, 77


def _unet(s: _Scope) -> None:
    # No attention at the finest level; 2 and 10 transformer blocks below; Linear proj_in/proj_out.
    _ldm_unet(
        s,
        mult=_UNET_MULT,
        depths=_DEPTHS,
        mid_depth=_MID_DEPTH,
        context_dim=_CONTEXT_DIM,
        linear=True,
        adm_in_channels=_ADM_IN_CHANNELS,
    )


def _open_clip_text(s: _Scope) -> None:
    """OpenCLIP ViT-bigG/14's text tower (open_clip names) and transformers' CLIPTextModelWithProjection."""
    c = _BIGG_DIM
    s("token_embedding", "text_model.embeddings.token_embedding").embedding(_CLIP_VOCAB, c)
    s.param("positional_embedding", "text_model.embeddings.position_embedding.weight", (_CLIP_POSITIONS, c), "embedding")
    for n in range(_BIGG_LAYERS):
        layer = s(f"transformer.resblocks.{n}", f"text_model.encoder.layers.{n}")
        layer("ln_1", "layer_norm1").norm(c)
        layer.param("attn.in_proj_weight", None, (3 * c, c), "weight")
        layer.param("attn.in_proj_bias", None, (3 * c,), "bias")
        for i, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            rows = ("rows", i * c, (i + 1) * c)
            layer.cut("attn.in_proj_weight", f"self_attn.{proj}.weight", (3 * c, c), "weight", rows)
            layer.cut("attn.in_proj_bias", f"self_attn.{proj}.bias", (3 * c,), "bias", rows)
        layer("attn.out_proj", "self_attn.out_proj").linear(c, c)
        layer("ln_2", "layer_norm2").norm(c)
        layer("mlp.c_fc", "mlp.fc1").linear(_BIGG_MLP, c)
        layer("mlp.c_proj", "mlp.fc2").linear(c, _BIGG_MLP)
    s("ln_final", "text_model.final_layer_norm").norm(c)
    # A bare parameter used as x @ text_projection; the Linear's weight is its transpose.
    s.param("text_projection", None, (c, c), "weight")
    s.cut("text_projection", "text_projection.weight", (c, c), "weight", ("T",))
    s.param("logit_scale", None, (), "logit_scale")  # CLIP's contrastive temperature; no one reads it


# diffusers component -> (its prefix in the single-file checkpoint, builder, file in the diffusers folder)
_COMPONENTS: _Components = {
    "unet": ("model.diffusion_model", _unet, "diffusion_pytorch_model.safetensors"),
    "vae": ("first_stage_model", _vae, "diffusion_pytorch_model.safetensors"),
    "text_encoder": ("conditioner.embedders.0.transformer", _clip_text, "model.safetensors"),
    "text_encoder_2": ("conditioner.embedders.1.model", _open_clip_text, "model.safetensors"),
}
LAYOUTS = ("original", *(f"diffusers-{name}" for name in _COMPONENTS))


def sdxl_tensors(layout: str, dtype=np.float16, seed: int = 0) -> dict[str, RandomTensor]:
    """Names and lazy values of one SDXL layout (see :data:`LAYOUTS`), in a stable order.

    ``np.asarray(value)`` gives the array; integer buffers stay int64 whatever ``dtype`` is.
    """
    return _tensors(_COMPONENTS, layout, dtype, seed)


# ---------------------------------------------------------------------------------------------------
# Files: the configs of stabilityai/stable-diffusion-xl-base-1.0

_DIFFUSERS_VERSION = "0.19.0.dev0"

_UNET_CONFIG = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": _DIFFUSERS_VERSION,
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": _ADDITION_TIME_EMBED_DIM,
    "attention_head_dim": [5, 10, 20],  # diffusers' name for the number of heads: 64 channels each
    "block_out_channels": [_UNET_CHANNELS * m for m in _UNET_MULT],
    "center_input_sample": False,
    "class_embed_type": None,
    "class_embeddings_concat": False,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "cross_attention_dim": _CONTEXT_DIM,
    "cross_attention_norm": None,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_only_cross_attention": None,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_attention_heads": None,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": _ADM_IN_CHANNELS,
    "resnet_out_scale_factor": 1.0,
    "resnet_skip_time_act": False,
    "resnet_time_scale_shift": "default",
    "sample_size": 128,
    "time_cond_proj_dim": None,
    "time_embedding_act_fn": None,
    "time_embedding_dim": None,
    "time_embedding_type": "positional",
    "timestep_post_act": None,
    "transformer_layers_per_block": [1, 2, 10],  # level 0 has no attention: its 1 is never used
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "upcast_attention": None,
    "use_linear_projection": True,
}
assert _TIME_DIM == 4 * _UNET_CHANNELS

_SDXL_VAE_CONFIG = {
    **_VAE_CONFIG,
    "_diffusers_version": "0.20.0.dev0",
    "force_upcast": True,  # the release's VAE overflows in float16
    "sample_size": 1024,
    "scaling_factor": 0.13025,
}

_TEXT_ENCODER_2_CONFIG = {
    "architectures": ["CLIPTextModelWithProjection"],
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_size": _BIGG_DIM,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": _BIGG_MLP,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": _CLIP_POSITIONS,
    "model_type": "clip_text_model",
    "num_attention_heads": _BIGG_HEADS,
    "num_hidden_layers": _BIGG_LAYERS,
    "pad_token_id": 1,
    "projection_dim": _BIGG_DIM,
    "transformers_version": "4.32.0.dev0",
    "vocab_size": _CLIP_VOCAB,
}

_SCHEDULER_CONFIG = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": _DIFFUSERS_VERSION,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}

# No tokenizers are written (as for SD1.5): tests/reference.py builds both from OpenAI's vocabulary.
_MODEL_INDEX = {
    "_class_name": "StableDiffusionXLPipeline",
    "_diffusers_version": _DIFFUSERS_VERSION,
    "force_zeros_for_empty_prompt": True,
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "tokenizer": [None, None],
    "tokenizer_2": [None, None],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def write_sdxl_single_file(path, *, dtype=np.float16, seed: int = 0) -> Path:
    """An original-layout SDXL base checkpoint (about 6.9 GB in float16) at ``path``."""
    return _write_single_file(path, _COMPONENTS, dtype, seed)


def write_sdxl_diffusers(folder, *, dtype=np.float16, seed: int = 0) -> Path:
    """A diffusers SDXL folder (model_index.json, unet/, vae/, text_encoder/, text_encoder_2/,
    scheduler/) at ``folder``."""
    torch_dtype = {"torch_dtype": np.dtype(dtype).name}
    configs = {
        "unet": _UNET_CONFIG,
        "vae": _SDXL_VAE_CONFIG,
        "text_encoder": {**_TEXT_ENCODER_CONFIG, "transformers_version": "4.32.0.dev0", **torch_dtype},
        "text_encoder_2": {**_TEXT_ENCODER_2_CONFIG, **torch_dtype},
        "scheduler/scheduler_config.json": _SCHEDULER_CONFIG,
        "model_index.json": _MODEL_INDEX,
    }
    return _write_diffusers(folder, _COMPONENTS, configs, dtype, seed)
