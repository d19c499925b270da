"""Random-weight extras for SD 1.5, on the machinery of models.py: a ControlNet, a TAESD, and the
single-file model cut into separate component files.

* ControlNet: what ``control_sd15_*.pth`` holds (``control_model.*``, as ControlNet 1.0 saves it):
  the UNet's encoder half (``time_embed``, ``input_blocks``, ``middle_block``), a 1x1
  ``zero_convs.N.0`` after each input block and ``middle_block_out.0`` after the middle block,
  whose outputs are added to the UNet's skip connections, and ``input_hint_block``, eight
  convolutions that bring the control image down to the latent's size. The engine's
  ``ControlNetBlock`` (control.hpp) names the same tensors after dropping ``control_model.``.
* TAESD: diffusers' ``AutoencoderTiny`` (``encoder.layers.N``, ``decoder.layers.N``), the layout
  of ``madebyollin/taesd``'s ``diffusion_pytorch_model.safetensors`` that the engine's docs point
  to and its ``TinyDecoder``/``TinyEncoder`` (tae.hpp) number the same way.
* Components: ``unet``, ``vae`` and ``clip_l`` files holding the single file's tensors with their
  prefixes (``model.diffusion_model.``, ``first_stage_model.``, ``cond_stage_model.transformer.``)
  removed, as ComfyUI-style split checkpoints are distributed.

Values come from the tensors' names as in models.py: the components hold exactly the single file's
weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .models import (
    _COMPONENTS,
    _METADATA,
    _UNET_CHANNELS,
    _Scope,
    _unet,
    RandomTensor,
    sd15_tensors,
    write_safetensors,
)

__all__ = ["write_controlnet", "write_taesd", "write_sd15_components", "COMPONENT_FILES"]

# input_blocks.N's output channels in SD 1.5's UNet, which zero_convs.N.0 maps onto itself.
_INPUT_BLOCK_CHANNELS = [_UNET_CHANNELS * m for m in (1, 1, 1, 1, 2, 2, 2, 4, 4, 4, 4, 4)]
_HINT_CHANNELS = [(16, 3), (16, 16), (32, 16), (32, 32), (96, 32), (96, 96), (256, 96), (_UNET_CHANNELS, 256)]


def _controlnet(s: _Scope) -> None:
    unet: list = []
    _unet(_Scope(unet, s.original, ""))
    # The ControlNet copies the UNet's encoder; the decoder half is not in it.
    s.params.extend(p for p in unet if p.original.split(".")[1] not in ("output_blocks", "out"))
    for i, c in enumerate(_INPUT_BLOCK_CHANNELS):
        s(f"zero_convs.{i}.0").conv(c, c, 1)
    s("middle_block_out.0").conv(_INPUT_BLOCK_CHANNELS[-1], _INPUT_BLOCK_CHANNELS[-1], 1)
    for i, (cout, cin) in enumerate(_HINT_CHANNELS):
        s(f"input_hint_block.{2 * i}").conv(cout, cin)


_TAE_CHANNELS = 64


def _tae_block(s: _Scope) -> None:
    for conv in ("conv.0", "conv.2", "conv.4"):
        s(conv).conv(_TAE_CHANNELS, _TAE_CHANNELS)


def _taesd(s: _Scope) -> None:
    c = _TAE_CHANNELS
    # Layer numbers follow nn.Sequential, ReLU and Upsample layers included; the convolutions that
    # change the resolution have no bias.
    enc = s("encoder.layers")
    enc("0").conv(c, 3)
    for i in range(1, 14):
        if i in (2, 6, 10):
            enc(str(i)).param("weight", None, (c, c, 3, 3), "weight")
        else:
            _tae_block(enc(str(i)))
    enc("14").conv(4, c)
    dec = s("decoder.layers")
    dec("0").conv(c, 4)
    for i in (2, 3, 4, 7, 8, 9, 12, 13, 14, 17):
        _tae_block(dec(str(i)))
    for i in (6, 11, 16):
        dec(str(i)).param("weight", None, (c, c, 3, 3), "weight")
    # The last bias near 0.5 (init "norm" is near 1, halved by _tae_gain) centres the image in
    # [0, 1], as in a trained TAESD, rather than leaving most pixels to be clamped.
    dec("18").param("weight", None, (3, c, 3, 3), "weight")
    dec("18").param("bias", None, (3,), "norm")


class _Scaled(RandomTensor):
    """A :class:`RandomTensor` times ``gain``."""

    __slots__ = ("gain",)

    def __init__(self, *args, gain: float) -> None:
        super().__init__(*args)
        self.gain = gain

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return (super().__array__(np.float32, copy) * np.float32(self.gain)).astype(dtype or self.dtype)


def _write(path, build, prefix: str, dtype, seed: int, gain=lambda name: 1.0) -> Path:
    params: list = []
    build(_Scope(params, prefix, ""))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {p.original: _Scaled(p.original, p.shape, dtype, p.init, seed, gain=gain(p.original)) for p in params}
    write_safetensors(path, tensors, _METADATA)
    return path


def _hint_gain(name: str) -> float:
    # Weights of N(0, 1/fan_in) shrink the control image through the hint block's eight SiLU
    # convolutions to about 1/40 of the UNet's features, so that it would hardly matter; 1.5 times
    # that keeps it near unit scale, as training does.
    return 1.5 if ".input_hint_block." in name and name.endswith(".weight") else 1.0


def write_controlnet(path, *, dtype=np.float16, seed: int = 0) -> Path:
    """A random-weight SD 1.5 ControlNet (about 720 MB in float16) at ``path``."""
    return _write(path, _controlnet, "control_model", dtype, seed, _hint_gain)


def _tae_gain(name: str) -> float:
    return {"decoder.layers.18.weight": 0.3, "decoder.layers.18.bias": 0.5}.get(name, 1.0)


def write_taesd(path, *, dtype=np.float16, seed: int = 0) -> Path:
    """A random-weight TAESD for SD 1.x (diffusers ``AutoencoderTiny``, about 5 MB in float16) at ``path``."""
    return _write(path, _taesd, "", dtype, seed, _tae_gain)


#: Generator argument -> (file name, the prefix its tensors carry in the single file).
COMPONENT_FILES = {
    name: (f"{name}.safetensors", _COMPONENTS[component][0] + ".")
    for name, component in (("diffusion_model", "unet"), ("vae", "vae"), ("clip_l", "text_encoder"))
}


def write_sd15_components(folder, *, parts=tuple(COMPONENT_FILES), dtype=np.float16, seed: int = 0) -> Path:
    """``parts`` (see :data:`COMPONENT_FILES`) of the single-file SD 1.5 model of
    ``models.write_sd15_single_file``, each as a file in ``folder`` without its prefix."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = sd15_tensors("original", dtype, seed)
    for filename, prefix in (COMPONENT_FILES[part] for part in parts):
        part = {name.removeprefix(prefix): t for name, t in tensors.items() if name.startswith(prefix)}
        write_safetensors(folder / filename, part, _METADATA)
    return folder
