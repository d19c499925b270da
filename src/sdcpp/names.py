"""Samplers, schedulers, predictions, LoRA apply modes, preview and cache modes and hires upscalers, named exactly as
the engine names them.

The members are written out here so that IDEs and type checkers see them (``Sampler.EULER_A``);
tests/test_params.py checks that they equal the engine's own name tables. Each member is a ``str``:
``Sampler.EULER_A == "euler_a"``.
"""

from __future__ import annotations

import enum

__all__ = ["CacheMode", "HiresUpscaler", "LoraApplyMode", "Prediction", "PreviewMode", "Sampler", "Scheduler",
           "samplers", "schedulers"]


class _EngineName(str, enum.Enum):
    def __str__(self) -> str:  # "euler", not "Sampler.EULER"
        return str(self.value)


class Sampler(_EngineName):
    """A sampling method of the engine."""

    EULER = "euler"
    EULER_A = "euler_a"
    HEUN = "heun"
    DPM2 = "dpm2"
    DPMPP2S_A = "dpm++2s_a"
    DPMPP2M = "dpm++2m"
    DPMPP2MV2 = "dpm++2mv2"
    IPNDM = "ipndm"
    IPNDM_V = "ipndm_v"
    LCM = "lcm"
    DDIM_TRAILING = "ddim_trailing"
    TCD = "tcd"
    RES_MULTISTEP = "res_multistep"
    RES_2S = "res_2s"
    ER_SDE = "er_sde"


class Scheduler(_EngineName):
    """A noise schedule of the engine."""

    DISCRETE = "discrete"
    KARRAS = "karras"
    EXPONENTIAL = "exponential"
    AYS = "ays"
    GITS = "gits"
    SGM_UNIFORM = "sgm_uniform"
    SIMPLE = "simple"
    SMOOTHSTEP = "smoothstep"
    KL_OPTIMAL = "kl_optimal"
    LCM = "lcm"
    BONG_TANGENT = "bong_tangent"


class Prediction(_EngineName):
    """What the diffusion model predicts (``Generator(prediction=...)``, ``Generator.prediction``).

    The engine decides it from the files when none is given: SD 2.x by one UNet evaluation (v when the
    output at the last timestep is far below the input, as a 768-v model's is), SDXL by a ``v_pred``
    or ``edm_vpred.sigma_max`` key in the file, flow models by their family; everything else is eps.
    """

    #: The noise (SD 1.x, SD 2.x base at 512, SDXL).
    EPS = "eps"
    #: The velocity (SD 2.x 768-v, v-prediction fine-tunes).
    V = "v"
    #: The velocity with EDM's noise levels (CosXL).
    EDM_V = "edm_v"
    #: Rectified flow (SD3.x, Qwen-Image, Z-Image, Wan, ...).
    SD3_FLOW = "sd3_flow"
    #: Flux.1's flow.
    FLUX_FLOW = "flux_flow"
    #: Flux.2's flow.
    FLUX2_FLOW = "flux2_flow"


class LoraApplyMode(_EngineName):
    """When the engine applies a LoRA (``Generator(lora_apply_mode=...)``)."""

    #: IMMEDIATELY for float weights, AT_RUNTIME for quantized ones (the engine's choice).
    AUTO = "auto"
    #: Merged into the weights when a generation asks for it: no cost per step. Changing or removing
    #: LoRAs merges the difference, which leaves rounding in float16 weights: images after removing
    #: a LoRA differ from the original by a few levels of 255 (2 measured), not exactly.
    IMMEDIATELY = "immediately"
    #: Computed beside the unchanged weights at every step: the weights are never modified, so
    #: removing a LoRA gives the original image exactly.
    AT_RUNTIME = "at_runtime"


class HiresUpscaler(_EngineName):
    """How the hires fix enlarges the first pass's result before sampling it again (:class:`sdcpp.HiresFix`)."""

    #: No hires fix: the image of the first pass.
    NONE = "None"
    #: The latent, bilinearly (AUTOMATIC1111's "Latent"); the ``LATENT_*`` modes interpolate otherwise.
    LATENT = "Latent"
    LATENT_NEAREST = "Latent (nearest)"
    LATENT_NEAREST_EXACT = "Latent (nearest-exact)"
    LATENT_ANTIALIASED = "Latent (antialiased)"
    LATENT_BICUBIC = "Latent (bicubic)"
    LATENT_BICUBIC_ANTIALIASED = "Latent (bicubic antialiased)"
    #: The decoded image, with a Lanczos filter, then encoded again.
    LANCZOS = "Lanczos"
    #: The decoded image, nearest neighbour, then encoded again.
    NEAREST = "Nearest"
    #: The decoded image, by an ESRGAN model (``HiresFix(model=...)``), then encoded again.
    MODEL = "Model"


class PreviewMode(_EngineName):
    """How ``generate(preview=...)`` makes its preview images from the latent being sampled."""

    #: No previews.
    NONE = "none"
    #: A fixed linear projection of the latent to RGB: nearly free, at the latent's size (1/8).
    PROJ = "proj"
    #: Decoded by the Generator's TAESD (``Generator(taesd=...)``), else by its VAE: full size.
    TAE = "tae"
    #: Decoded by the Generator's decoder (its TAESD if it was loaded with one): full size, slow.
    VAE = "vae"


class CacheMode(_EngineName):
    """Step caching: reuse the diffusion model's output at steps where it barely changes.

    The engine's command line names; which ones a model can use depends on its architecture:
    ``UCACHE`` on the UNet models (SD 1.x, 2.x, XL), ``EASYCACHE``, ``DBCACHE``, ``TAYLORSEER`` and
    ``CACHE_DIT`` on DiT models, ``SPECTRUM`` on both.
    """

    DISABLED = "disabled"
    EASYCACHE = "easycache"
    UCACHE = "ucache"
    DBCACHE = "dbcache"
    TAYLORSEER = "taylorseer"
    CACHE_DIT = "cache-dit"
    SPECTRUM = "spectrum"


#: The cache modes a UNet model (SD 1.x, 2.x, XL) can use; the engine logs a warning and runs without the
#: others (the model checks of the engine's init_*_runtime in sample-cache.cpp).
UNET_CACHE_MODES = frozenset({CacheMode.DISABLED, CacheMode.UCACHE, CacheMode.SPECTRUM})
#: The cache modes a DiT model (SD3, Flux, Wan, Qwen-Image, ...) can use, by the same checks.
DIT_CACHE_MODES = frozenset(set(CacheMode) - {CacheMode.UCACHE})


def samplers() -> list[str]:
    """Names of the samplers this build supports."""
    return [s.value for s in Sampler]


def schedulers() -> list[str]:
    """Names of the schedulers this build supports."""
    return [s.value for s in Scheduler]
