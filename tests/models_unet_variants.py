"""Random-weight UNet "channel variants": inpainting and instruct-pix2pix models of SD 1.x, SD 2.x and SDXL.

Each is its base fixture (models.py, models_sd2.py, models_sdxl.py) with another first convolution,
``model.diffusion_model.input_blocks.0.0.weight``: 9 input channels for inpainting (the noisy latent,
the mask, the masked image's latent), 8 for instruct-pix2pix (the noisy latent, the image's latent).
The engine tells these families apart by that width alone (``get_sd_version`` in src/model.cpp).

* ``sd15-inpaint.safetensors``, ``sd15-ip2p.safetensors``: SD 1.5 single files, as
  ``sd-v1-5-inpainting`` and ``instruct-pix2pix-00-22000`` are released (float16, 2.1 GB each);
* ``sd2-inpaint.safetensors``: SD 2.x, as ``512-inpainting-ema`` (eps: the 768-v fixture's v bias is
  left out; float16, 2.6 GB);
* ``sdxl-inpaint.q4_0.gguf``, ``sdxl-ip2p.q4_0.gguf``: SDXL single files as q4_0 GGUF (about 2 GB
  each, against 6.9 GB in float16): matrices and the UNet's convolution kernels, flattened to
  ``[out, in x 3 x 3]`` as the engine reads quantized kernels (patch 0032), are q4_0 where their rows
  are whole blocks; the VAE and other tensors stay float16, vectors float32. The input convolution's
  rows (9 x 9 or 8 x 9 values) are no whole blocks, so it stays a float16 4-d kernel, as in every
  quantization of these models.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pytest

from . import models, models_dit, models_sd2, models_sdxl
from .models import _METADATA, RandomTensor, write_safetensors

__all__ = ["INPAINT", "PIX2PIX", "with_input_channels", "flattened_kernels"]

INPAINT, PIX2PIX = 9, 8  # the first convolution's input channels
_FIRST_CONV = "model.diffusion_model.input_blocks.0.0.weight"
_UNET = "model.diffusion_model."


def with_input_channels(tensors: Mapping[str, RandomTensor], channels: int) -> dict[str, RandomTensor]:
    """``tensors`` (a single-file layout) with a first UNet convolution taking ``channels`` channels."""
    conv = tensors[_FIRST_CONV]
    wider = RandomTensor(conv.key, (conv.shape[0], channels, *conv.shape[2:]), conv.dtype, conv.init, conv.seed)
    return {**tensors, _FIRST_CONV: wider}


def flattened_kernels(tensors: Mapping[str, RandomTensor]) -> dict[str, RandomTensor]:
    """The UNet's convolution kernels whose ``in x kh x kw`` rows are whole q4_0 blocks as ``[out, in x kh x kw]``
    matrices (same values, the layout the engine reads quantized kernels in), so that write_gguf quantizes them."""
    out = {}
    for name, t in tensors.items():
        if name.startswith(_UNET) and len(t.shape) == 4 and np.prod(t.shape[1:]) % 32 == 0:
            t = RandomTensor(t.key, (t.shape[0], int(np.prod(t.shape[1:]))), t.dtype, t.init, t.seed, t.shape)
        out[name] = t
    return out


def write_sd15(path, *, channels: int, seed: int = 0) -> Path:
    """An SD 1.5 single file (float16, 2.1 GB) whose UNet takes ``channels`` input channels."""
    write_safetensors(path, with_input_channels(models.sd15_tensors("original", seed=seed), channels), _METADATA)
    return Path(path)


def write_sd2(path, *, channels: int, seed: int = 0) -> Path:
    """An SD 2.x eps single file (float16, 2.6 GB) whose UNet takes ``channels`` input channels."""
    tensors = models_sd2.sd2_tensors("original", seed=seed, v_bias=None)
    write_safetensors(path, with_input_channels(tensors, channels), _METADATA)
    return Path(path)


def write_sdxl_gguf(path, *, channels: int, seed: int = 0) -> Path:
    """An SDXL single file as q4_0 GGUF (about 2 GB) whose UNet takes ``channels`` input channels."""
    tensors = with_input_channels(models_sdxl.sdxl_tensors("original", np.float32, seed), channels)
    return models_dit.write_gguf(path, flattened_kernels(tensors))


def _fixture(name: str, write: Callable[[Path], Path]):
    def build(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
        from .conftest import _cache_dir, built

        folder = _cache_dir(tmp_path_factory, models, models_sd2, models_sdxl, models_dit, sys.modules[__name__])
        return built(request, folder / name, write)

    build.__doc__ = f"{name}, built once ({write.func.__doc__})"
    return pytest.fixture(scope="session", name=name.split(".")[0].replace("-", "_"))(build)


sd15_inpaint = _fixture("sd15-inpaint.safetensors", partial(write_sd15, channels=INPAINT))
sd15_ip2p = _fixture("sd15-ip2p.safetensors", partial(write_sd15, channels=PIX2PIX))
sd2_inpaint = _fixture("sd2-inpaint.safetensors", partial(write_sd2, channels=INPAINT))
sdxl_inpaint = _fixture("sdxl-inpaint.q4_0.gguf", partial(write_sdxl_gguf, channels=INPAINT))
sdxl_ip2p = _fixture("sdxl-ip2p.q4_0.gguf", partial(write_sdxl_gguf, channels=PIX2PIX))
