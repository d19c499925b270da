"""Each model family's recommended settings: what a generation uses for the settings it leaves None.

Sizes, steps, CFG scales and distilled guidance are the ones the engine's own documentation runs each
family with (third_party/stable-diffusion.cpp/docs/*.md, cited per row), or where it gives none, the
engine's defaults (``sd_img_gen_params_init``: 512x512, 20 steps, CFG 7, distilled guidance 3.5) or the
family's model card. The sampler, scheduler and flow shift are the engine's own choice for the loaded
model (``sd_get_default_sample_method``: euler for the DiT families, euler_a for the UNets;
``sd_get_default_scheduler``; ``default_flow_shift``), read from the loaded context.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

from . import _detect

__all__ = ["FamilyDefaults", "family_defaults"]


class FamilyDefaults(NamedTuple):
    """What a family's images are made with when the caller says nothing."""

    width: int
    height: int
    steps: int
    cfg_scale: float
    #: Distilled guidance, for the guidance-distilled families only (None: the model has no such input).
    guidance: Optional[float] = None


_ENGINE = FamilyDefaults(512, 512, 20, 7.0)  # sd_img_gen_params_init / sd_sample_params_init


def _rows() -> dict[str, FamilyDefaults]:  # family -> its defaults
    sd1 = _ENGINE  # the engine's docs/sd.md: SD 1.x runs with no size, steps or CFG given
    sdxl = _ENGINE._replace(width=1024, height=1024)  # the engine's docs/sd.md: sd_xl_base_1.0 with -H 1024 -W 1024
    flux = FamilyDefaults(1024, 1024, 20, 1.0, 3.5)  # the engine's docs/flux.md: --cfg-scale 1.0; Flux.1's card: 1024x1024
    return {
        **{f: sd1 for f in _detect.SD1 | _detect.SD2},  # SD 2.x 768-v: see family_defaults
        **{f: sdxl for f in _detect.SDXL},
        # the engine's docs/distilled_sd.md: "--cfg-scale 1 and --steps 1 are absolutely necessary" (one-step models)
        **{f: FamilyDefaults(512, 512, 1, 1.0) for f in ("SDXS (512-DS)", "SDXS (09)")},
        "SD3.x": FamilyDefaults(1024, 1024, 20, 4.5),  # the engine's docs/sd3.md: -H 1024 -W 1024 --cfg-scale 4.5
        **{f: flux for f in ("Flux", "Flux Fill", "Flux Control", "Flex.2")},
        "Chroma Radiance": FamilyDefaults(1024, 1024, 20, 4.0),  # the engine's docs/chroma_radiance.md: --cfg-scale 4.0
        "Qwen Image": FamilyDefaults(1024, 1024, 20, 2.5),  # the engine's docs/qwen_image.md: -H 1024 -W 1024 --cfg-scale 2.5
        "Anima": FamilyDefaults(1024, 1024, 20, 6.0),  # the engine's docs/anima.md: --cfg-scale 6.0
        "Flux.2": FamilyDefaults(1024, 1024, 20, 1.0, 3.5),  # the engine's docs/flux2.md: flux2-dev --cfg-scale 1.0
        # the engine's docs/flux2.md: klein --cfg-scale 1.0 --steps 4. No distilled guidance: klein has no guidance_in
        # (the engine logs guidance_embed = false), so a guidance value would change nothing.
        "Flux.2 klein": FamilyDefaults(1024, 1024, 4, 1.0),
        "Z-Image": FamilyDefaults(1024, 1024, 20, 1.0),  # the engine's docs/z_image.md: Z-Image-Turbo --cfg-scale 1.0
        "Ovis Image": FamilyDefaults(1024, 1024, 20, 5.0),  # the engine's docs/ovis_image.md: --cfg-scale 5.0
        "Ernie Image": FamilyDefaults(1024, 1024, 20, 5.0),  # the engine's docs/ernie_image.md: --cfg-scale 5.0 (the base model)
        **{f: FamilyDefaults(832, 480, 20, 6.0) for f in _detect.FAMILIES if f.startswith("Wan")},  # the engine's docs/wan.md
    }


_ROWS = _rows()


def family_defaults(family: str, prediction: str) -> FamilyDefaults:
    """The settings for ``family`` (a ``Generator.family``) whose denoiser predicts ``prediction``.

    SD 2.x comes as 2.x-base (eps, trained at 512x512) and 768-v (v, trained at 768x768: Stability
    AI's stable-diffusion-2-1 model card); the prediction tells them apart.
    """
    row = _ROWS.get(family, _ENGINE)
    if family == "SD 2.x" and prediction == "v":
        row = row._replace(width=768, height=768)
    return row


def resolved(row: FamilyDefaults, sampler: str, scheduler: str, flow_shift: float) -> dict[str, Any]:
    """The defaults as GenerationParams field -> value (flow_shift None where the model has none)."""
    return {**row._asdict(), "sampler": sampler, "scheduler": scheduler,
            "flow_shift": None if math.isinf(flow_shift) else round(flow_shift, 4)}
