"""The component files a Generator can be given beside (or instead of) one model file.

One row per component, keyed by the Generator argument that names it: the engine's
``sd_ctx_params_t`` has a ``<name>_path`` for each (cpp/context.cpp's table; tests/test_components.py
checks that the two agree). Adding a component the engine gains is a row here, a row there and a
keyword argument of :class:`~sdcpp.Generator`.
"""

from __future__ import annotations

import os
from typing import Mapping

from . import _detect
from .errors import ModelLoadError
from .inspect import read_model

__all__ = ["COMPONENTS", "check_complete"]

#: Generator argument -> what the file holds.
COMPONENTS: dict[str, str] = {
    "model": "a whole model: one file (.safetensors, .gguf, .ckpt) or a diffusers folder",
    "diffusion_model": "the diffusion model alone (the UNet, or the DiT of SD3.x, Flux, Qwen-Image, ...)",
    "high_noise_diffusion_model": "Wan 2.2's high-noise expert diffusion model",
    "vae": "the VAE (autoencoder) that turns latents into pixels",
    "taesd": "a tiny autoencoder (TAESD) used in place of the VAE",
    "clip_l": "the CLIP text encoder: ViT-L/14 (SD 1.x, SDXL's first, SD3.x, Flux.1) or OpenCLIP ViT-H/14 (SD 2.x)",
    "clip_g": "the OpenCLIP ViT-bigG/14 text encoder (SDXL's second, SD3.x)",
    "clip_vision": "a CLIP vision encoder (Wan image-to-video)",
    "t5xxl": "the T5-XXL text encoder (SD3.x, Flux.1, Chroma; umT5-XXL for Wan)",
    "llm": "the language-model text encoder (Qwen2.5-VL for Qwen-Image, Qwen3 for Z-Image and Flux.2 klein, "
           "Mistral for Flux.2 dev)",
    "llm_vision": "the language model's vision tower (Qwen-Image Edit)",
    "control_net": "a ControlNet, used by generate(control_image=...)",
    "photo_maker": "a PhotoMaker ID encoder for SDXL (v1, or v2 with 'v2' in its name), used by "
                   "generate(id_images=...)",
}

# The components sdcpp.inspect reads: those that decide the family and make it complete.
_INSPECTED = ("diffusion_model", "vae", "clip_l", "clip_g", "t5xxl", "llm")


def check_complete(paths: Mapping[str, str]) -> tuple[str, ...]:
    """Refuse, before the engine reads any weights, a set of files that lacks a component the family needs.

    The family is detected from the files' headers as the engine would (for a UNet given without its
    text encoders, from its attention width). A model the headers cannot place is left to the engine.

    Returns:
        For a video model, the frames it can be given (``"init_image"``, ``"end_image"``); else ``()``.

    Raises:
        sdcpp.ModelLoadError: naming each missing component and the argument that supplies it, or a Wan
            transformer of a depth the engine does not know (it aborts the process on those).
    """
    info, family, tensors = read_model(paths.get("model"), {k: v for k, v in paths.items() if k in _INSPECTED})
    depth = _detect.wan_depth(tensors) if family in _detect.WAN else None
    if depth is not None and depth not in _detect.WAN_DEPTHS:
        raise ModelLoadError(
            f"diffusion_model: this Wan transformer has {depth} blocks; the engine (wan.hpp) only knows 30 "
            "(Wan 2.1 1.3B, Wan 2.2 TI2V 5B) and 40 (the 14B models) and would abort on it"
        )
    missing = [c for c in info.missing if not (c == "vae" and "taesd" in paths)]
    if not missing:
        return _detect.wan_frame_inputs(family, tensors) if family in _detect.WAN else ()
    lines = "\n".join(f"  {c}=PATH: {COMPONENTS[c]}" for c in missing)
    files = ", ".join(f"{k}={os.path.basename(v)!r}" for k, v in paths.items())
    raise ModelLoadError(
        f"{', '.join(missing)}: {family} needs {'these components' if len(missing) > 1 else 'this component'}, "
        f"which {files} {'do' if len(paths) > 1 else 'does'} not hold; pass\n{lines}"
    )
