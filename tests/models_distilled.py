"""Random-weight distilled UNets: BK-SDM tiny (SD 1.x, SD 2.x), SDXS-512 (DreamShaper, 0.9), Segmind
Vega and SSD-1B, on the machinery of models.py, with the tensors the engine reads for each
(``UnetModelBlock`` in the engine's src/unet.hpp builds the blocks from the detected version).

* **Tiny UNets** (BK-SDM, arXiv 2305.15798; SDXS, arXiv 2403.16627): three levels (320, 640, 1280),
  one resnet per level going down and two coming up, no middle block. The files people run are made
  with diffusers' ``convert_diffusers_to_original_stable_diffusion.py`` (the engine's
  docs/distilled_sd.md): its map, written for SD 1.5, numbers blocks as if each level had two resnets
  (``input_blocks.1, 3, 4, 6, 7``; ``output_blocks.0, 1, 2.1 (upsampler), 3, 4, 5.2, 6, 7``) and has
  no entry for ``up_blocks.0.attentions``, which stay in diffusers' names; the engine maps those.
  SD 2.x's text encoder comes out as open_clip's tower with the 23 layers diffusers keeps (the engine
  expects no 24th). SD 1.x tiny (bk-sdm-tiny) and SD 2.x tiny (bk-sdm-v2-tiny) attend at every level,
  with SD 1.5's and SD 2.1's KL VAE. SDXS-512-DreamShaper has no attention at the finest level;
  SDXS-512-0.9 has, but there the first attention of each block (``attn1``) attends to the text
  alone (diffusers' ``only_cross_attention``: its ``to_k``/``to_v`` take the 1024-wide context). Both
  SDXS carry a TAESD-style ``AutoencoderTiny`` under ``first_stage_model.``, which the engine runs
  as its VAE.
* **Vega and SSD-1B** (arXiv 2401.02677): SDXL base with transformer blocks removed and a middle
  block of one resnet; SDXL's two text encoders and VAE. Built as SDXL's tensors less those blocks.

Sizes in float16: SD 1.x tiny 1.1 GB, SDXS-512-DS 0.9 GB, SD 2.x tiny 1.5 GB, SDXS-09 1.3 GB, Vega
3.3 GB (single file), SSD-1B 4.5 GB as a diffusers folder (unet/ 2.7 GB, text_encoder_2/ 1.4 GB), no
file over 3.3 GB.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from . import models, models_extra, models_sd2, models_sdxl
from .models import _TIME_DIM, _UNET_CHANNELS, _Components, _Scope, _spatial_transformer, _unet_resblock

__all__ = ["FAMILIES", "write_distilled"]


def _tiny_unet(
    s: _Scope, *, context_dim: int, linear: bool, attention: tuple[bool, ...], only_cross_first: bool = False
) -> None:
    """BK-SDM's tiny UNet under the names the SD 1.5 conversion script gives it (see the docstring);
    ``attention[level]``: transformer blocks at that level; ``only_cross_first``: SDXS-0.9's finest
    level, whose ``attn1`` takes the text context."""
    mult = (1, 2, 4)
    s("time_embed.0", "time_embedding.linear_1").linear(_TIME_DIM, _UNET_CHANNELS)
    s("time_embed.2", "time_embedding.linear_2").linear(_TIME_DIM, _TIME_DIM)
    s("input_blocks.0.0", "conv_in").conv(_UNET_CHANNELS, 4)

    def transformer(block: _Scope, level: int) -> None:
        first = len(block.params)
        _spatial_transformer(block, _UNET_CHANNELS * mult[level], context_dim, 1, linear)
        if only_cross_first and level == 0:
            cross = re.compile(r"\.attn1\.to_[kv]\.weight$")
            block.params[first:] = [
                p._replace(shape=(p.shape[0], context_dim), diffusers_shape=(p.shape[0], context_dim))
                if cross.search(p.original) else p
                for p in block.params[first:]
            ]

    last = len(mult) - 1
    skips, ch = [_UNET_CHANNELS], _UNET_CHANNELS
    for level, m in enumerate(mult):
        _unet_resblock(s(f"input_blocks.{3 * level + 1}.0", f"down_blocks.{level}.resnets.0"), ch, _UNET_CHANNELS * m)
        ch = _UNET_CHANNELS * m
        if attention[level]:
            transformer(s(f"input_blocks.{3 * level + 1}.1", f"down_blocks.{level}.attentions.0"), level)
        skips.append(ch)
        if level < last:
            s(f"input_blocks.{3 * level + 3}.0.op", f"down_blocks.{level}.downsamplers.0.conv").conv(ch, ch)
            skips.append(ch)

    for up, m in enumerate(reversed(mult)):
        level = last - up
        for j in range(2):
            resnet = s(f"output_blocks.{3 * up + j}.0", f"up_blocks.{up}.resnets.{j}")
            _unet_resblock(resnet, ch + skips.pop(), _UNET_CHANNELS * m)
            ch = _UNET_CHANNELS * m
            if attention[level]:
                # The conversion script has no entry for the coarsest up level's attentions.
                original = f"output_blocks.{3 * up + j}.1" if up else f"up_blocks.0.attentions.{j}"
                transformer(s(original, f"up_blocks.{up}.attentions.{j}"), level)
        if up < last:
            s(f"output_blocks.{3 * up + 2}.{2 if up else 1}.conv", f"up_blocks.{up}.upsamplers.0.conv").conv(ch, ch)

    s("out.0", "conv_norm_out").norm(_UNET_CHANNELS)
    s("out.2", "conv_out").conv(4, _UNET_CHANNELS)


def _pruned_sdxl_unet(input_depths: dict[int, int], output_depths: dict[int, int]) -> Callable[[_Scope], None]:
    """SDXL's UNet keeping ``depths[block]`` transformer blocks in input/output block N, and only the
    first resnet of the middle block (Segmind's Vega and SSD-1B)."""
    block = re.compile(r"\.(input|output)_blocks\.(\d+)\.1\.transformer_blocks\.(\d+)\.")

    def kept(name: str) -> bool:
        if ".middle_block.1." in name or ".middle_block.2." in name:
            return False
        m = block.search(name)
        if not m:
            return True
        depths = input_depths if m[1] == "input" else output_depths
        return int(m[3]) < depths[int(m[2])]

    def build(s: _Scope) -> None:
        full: list = []
        models_sdxl._unet(_Scope(full, s.original, s.diffusers))
        s.params.extend(p for p in full if kept(p.original))

    return build


# src/unet.hpp: SSD-1B keeps 2 and 4 transformer blocks going down, 4, 4, 10 | 2, 1, 1 coming up;
# Vega 1 and 2 going down, 2, 2, 2 | 1, 1, 1 coming up.
_ssd1b_unet = _pruned_sdxl_unet({4: 2, 5: 2, 7: 4, 8: 4}, {0: 4, 1: 4, 2: 10, 3: 2, 4: 1, 5: 1})
_vega_unet = _pruned_sdxl_unet({4: 1, 5: 1, 7: 2, 8: 2}, {0: 2, 1: 2, 2: 2, 3: 1, 4: 1, 5: 1})


def _open_clip_h_23(s: _Scope) -> None:
    """OpenCLIP ViT-H/14 as the SD 2.x conversion script writes it from diffusers' 23-layer
    ``CLIPTextModel``: no 24th layer, no ``text_projection`` or ``logit_scale``."""
    full: list = []
    models_sd2._open_clip_h(_Scope(full, s.original, s.diffusers))
    dropped = re.compile(r"\.(transformer\.resblocks\.23\..*|text_projection|logit_scale)$")
    s.params.extend(p for p in full if not dropped.search(p.original))


_SD1_TEXT = ("cond_stage_model.transformer", models._clip_text, "model.safetensors")
_SD2_TEXT = ("cond_stage_model.model", _open_clip_h_23, "model.safetensors")
_KL_VAE = ("first_stage_model", models._vae, "diffusion_pytorch_model.safetensors")
_TINY_VAE = ("first_stage_model", models_extra._taesd, "diffusion_pytorch_model.safetensors")
_UNET_FILE = "diffusion_pytorch_model.safetensors"


def _tiny_model(text, vae, **unet) -> _Components:
    """A tiny UNet (``_tiny_unet``'s keyword arguments) with these text encoder and VAE."""
    def build(s: _Scope) -> None:
        _tiny_unet(s, **unet)

    return {"unet": ("model.diffusion_model", build, _UNET_FILE), "vae": vae, "text_encoder": text}


def _sdxl_model(unet: Callable[[_Scope], None]) -> _Components:
    return {**models_sdxl._COMPONENTS, "unet": ("model.diffusion_model", unet, _UNET_FILE)}

#: the engine's family name -> (components, layout written: "single-file" or "diffusers", file name)
FAMILIES: dict[str, tuple[_Components, str, str]] = {
    "SD 1.x Tiny UNet": (
        _tiny_model(_SD1_TEXT, _KL_VAE, context_dim=768, linear=False, attention=(True, True, True)),
        "single-file", "bk-sdm-tiny.safetensors",
    ),
    "SDXS (512-DS)": (
        _tiny_model(_SD1_TEXT, _TINY_VAE, context_dim=768, linear=False, attention=(False, True, True)),
        "single-file", "sdxs-512-dreamshaper.safetensors",
    ),
    "SD 2.x Tiny UNet": (
        _tiny_model(_SD2_TEXT, _KL_VAE, context_dim=1024, linear=True, attention=(True, True, True)),
        "single-file", "bk-sdm-v2-tiny.safetensors",
    ),
    "SDXS (09)": (
        _tiny_model(_SD2_TEXT, _TINY_VAE, context_dim=1024, linear=True, attention=(True, True, True),
                    only_cross_first=True),
        "single-file", "sdxs-09.safetensors",
    ),
    "SDXL (Vega)": (_sdxl_model(_vega_unet), "single-file", "segmind-vega.safetensors"),
    "SDXL (SSD1B)": (_sdxl_model(_ssd1b_unet), "diffusers", "SSD-1B"),
}


def _tae_gain(name: str) -> float:
    return models_extra._tae_gain(name.removeprefix("first_stage_model."))


def write_distilled(path, family: str, *, dtype=np.float16, seed: int = 0) -> Path:
    """``family``'s model at ``path``: a single file, or for SSD-1B a diffusers folder (SDXL's configs;
    the engine reads none of them)."""
    components, layout, _ = FAMILIES[family]
    path = Path(path)
    if layout == "diffusers":
        configs = {
            "unet": models_sdxl._UNET_CONFIG,
            "vae": models_sdxl._SDXL_VAE_CONFIG,
            "text_encoder": models_sdxl._TEXT_ENCODER_CONFIG,
            "text_encoder_2": models_sdxl._TEXT_ENCODER_2_CONFIG,
            "scheduler/scheduler_config.json": models_sdxl._SCHEDULER_CONFIG,
            "model_index.json": models_sdxl._MODEL_INDEX,
        }
        return models._write_diffusers(path, components, configs, dtype, seed)
    tensors = models._tensors(components, "original", dtype, seed)
    if components["vae"] is _TINY_VAE:  # TAESD's output scale (models_extra.write_taesd)
        tensors = {
            name: models_extra._Scaled(t.key, t.shape, t.dtype, t.init, t.seed, gain=_tae_gain(name))
            if name.startswith("first_stage_model.") else t
            for name, t in tensors.items()
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    models.write_safetensors(path, tensors, models._METADATA)
    return path


@pytest.fixture(scope="session")
def distilled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model of ``request.param`` (a key of :data:`FAMILIES`), built once."""
    from .conftest import _cache_dir, built

    family = request.param
    folder = _cache_dir(tmp_path_factory, models, models_extra, models_sd2, models_sdxl, sys.modules[__name__])
    return built(request, folder / FAMILIES[family][2], lambda path: write_distilled(path, family))
