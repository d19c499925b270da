"""Random-weight Stable Diffusion 1.5 models, written with numpy alone.

The architecture, tensor names and shapes are those of the real SD1.5 release, in two layouts:

* ``"original"``: one single-file checkpoint (``model.diffusion_model.*``, ``first_stage_model.*``,
  ``cond_stage_model.transformer.text_model.*``), as in ``v1-5-pruned-emaonly.safetensors``;
* ``"diffusers-unet"``, ``"diffusers-vae"``, ``"diffusers-text_encoder"``: the three weight files of
  a diffusers folder.

Every value is drawn from the original name of its tensor, so both layouts built with the same seed
hold the same weights; a model run from one layout can be compared with another run from the other.
The scales (weights N(0, 1/fan_in), norms near 1, small biases) keep activations finite and far from
constant through text encoder, UNet and VAE.

Values are materialised one tensor at a time while a file is written, so a 2 GB model streams to disk
with a few hundred MB of memory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import struct
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np

# safetensors dtype names, keyed by (numpy kind, itemsize) so any byte order maps.
_SAFETENSORS_DTYPES = {("f", 2): "F16", ("f", 4): "F32", ("i", 8): "I64"}


def write_safetensors(path, tensors: Mapping[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` as a .safetensors file.

    Values may be numpy arrays or lazy array-likes (``shape``, ``dtype`` and ``__array__``, such as
    :class:`RandomTensor`): the header needs only shapes, and each value is materialised just while
    it is written.
    """
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, tensor in tensors.items():
        dtype = np.dtype(tensor.dtype)
        nbytes = dtype.itemsize * math.prod(tensor.shape)
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[dtype.kind, dtype.itemsize],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the format pads the header with spaces so data starts 8-aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, tensor in tensors.items():
            array = np.asarray(tensor, dtype=np.dtype(tensor.dtype).newbyteorder("<"), order="C")
            if array.shape != tuple(tensor.shape):
                raise ValueError(f"{name}: declared shape {tuple(tensor.shape)}, got {array.shape}")
            f.write(array.data)


# ---------------------------------------------------------------------------------------------------
# Values

# Slicing one pool of unit normals per tensor is far faster than drawing a billion fresh values; the
# pool must hold the largest tensor (the CLIP token embedding, 49408 x 768 = 38M values).
_POOL_SIZE = 1 << 26


@functools.lru_cache(maxsize=1)
def _pool(seed: int) -> np.ndarray:
    pool = np.random.default_rng(seed).standard_normal(_POOL_SIZE, dtype=np.float32)
    pool.flags.writeable = False
    return pool


class RandomTensor:
    """A seeded random tensor that takes memory only when ``np.asarray()`` is called on it.

    ``key`` (the tensor's name in the original layout) picks the slice of the seed's pool, so a
    renamed or reshaped copy of a tensor holds the same values.
    """

    __slots__ = ("key", "shape", "dtype", "init", "seed")

    def __init__(self, key: str, shape: tuple[int, ...], dtype, init: str, seed: int):
        self.key, self.shape, self.dtype, self.init, self.seed = key, tuple(shape), np.dtype(dtype), init, seed

    def __repr__(self) -> str:
        return f"RandomTensor({self.key!r}, shape={self.shape}, dtype={self.dtype}, init={self.init!r})"

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if copy is False:
            raise ValueError("a RandomTensor is computed afresh on every conversion")
        n = math.prod(self.shape)
        if self.init == "position_ids":
            values = np.arange(n, dtype=np.int64)
        else:
            pool = _pool(self.seed)
            digest = hashlib.blake2b(self.key.encode(), digest_size=8).digest()
            start = int.from_bytes(digest, "little") % (pool.size - n + 1)
            values = pool[start : start + n]
            if self.init == "weight":  # N(0, 1/fan_in) keeps each layer's output variance near its input's
                values = values * np.float32(1 / math.sqrt(math.prod(self.shape[1:])))
            elif self.init == "norm":  # near 1, but not 1, so a swapped norm changes the output
                values = values * np.float32(0.1) + np.float32(1)
            else:  # "bias", "embedding"
                values = values * np.float32(0.02)
        return values.astype(dtype or self.dtype, copy=False).reshape(self.shape)


# ---------------------------------------------------------------------------------------------------
# Architecture


class _Param(NamedTuple):
    original: str
    diffusers: str | None  # None: absent from the diffusers layout
    shape: tuple[int, ...]
    diffusers_shape: tuple[int, ...]
    init: str  # "weight" | "bias" | "norm" | "embedding" | "position_ids"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class _Scope:
    """A module path under both naming schemes: calling it descends, the layer methods record params."""

    def __init__(self, params: list[_Param], original: str, diffusers: str):
        self.params, self.original, self.diffusers = params, original, diffusers

    def __call__(self, original: str, diffusers: str | None = None) -> _Scope:
        return _Scope(self.params, _join(self.original, original), _join(self.diffusers, diffusers or original))

    def _add(self, leaf: str, shape, init: str, diffusers_shape=None, in_diffusers: bool = True) -> None:
        self.params.append(
            _Param(
                _join(self.original, leaf),
                _join(self.diffusers, leaf) if in_diffusers else None,
                shape,
                diffusers_shape or shape,
                init,
            )
        )

    def conv(self, cout: int, cin: int, k: int = 3) -> None:
        self._add("weight", (cout, cin, k, k), "weight")
        self._add("bias", (cout,), "bias")

    def linear(self, cout: int, cin: int, bias: bool = True) -> None:
        self._add("weight", (cout, cin), "weight")
        if bias:
            self._add("bias", (cout,), "bias")

    def conv1x1_or_linear(self, c: int) -> None:
        """The VAE attention projections: 1x1 convolutions in the original, Linear layers in diffusers."""
        self._add("weight", (c, c, 1, 1), "weight", diffusers_shape=(c, c))
        self._add("bias", (c,), "bias")

    def norm(self, c: int) -> None:
        self._add("weight", (c,), "norm")
        self._add("bias", (c,), "bias")

    def embedding(self, n: int, c: int) -> None:
        self._add("weight", (n, c), "embedding")

    def position_ids(self, n: int) -> None:
        # A buffer that the single-file checkpoint carries but transformers >= 4.31 no longer saves, so
        # diffusers text encoders written today lack it. The engine skips it by name in either layout.
        self._add("position_ids", (1, n), "position_ids", in_diffusers=False)


_UNET_CHANNELS, _UNET_MULT, _TIME_DIM, _CONTEXT_DIM = 320, (1, 2, 4, 4), 1280, 768
_VAE_CHANNELS, _VAE_MULT, _LATENT = 128, (1, 2, 4, 4), 4
_CLIP_DIM, _CLIP_MLP, _CLIP_LAYERS, _CLIP_VOCAB, _CLIP_POSITIONS = 768, 3072, 12, 49408, 77


def _unet_resblock(s: _Scope, cin: int, cout: int) -> None:
    s("in_layers.0", "norm1").norm(cin)
    s("in_layers.2", "conv1").conv(cout, cin)
    s("emb_layers.1", "time_emb_proj").linear(cout, _TIME_DIM)
    s("out_layers.0", "norm2").norm(cout)
    s("out_layers.3", "conv2").conv(cout, cout)
    if cin != cout:
        s("skip_connection", "conv_shortcut").conv(cout, cin, 1)


def _spatial_transformer(s: _Scope, c: int) -> None:
    s("norm").norm(c)
    s("proj_in").conv(c, c, 1)  # SD1.x: 1x1 convolutions, not Linear (use_linear_projection=False)
    block = s("transformer_blocks.0")
    for attn, context in (("attn1", c), ("attn2", _CONTEXT_DIM)):
        block(f"{attn}.to_q").linear(c, c, bias=False)
        block(f"{attn}.to_k").linear(c, context, bias=False)
        block(f"{attn}.to_v").linear(c, context, bias=False)
        block(f"{attn}.to_out.0").linear(c, c)
    block("ff.net.0.proj").linear(8 * c, c)  # GEGLU: value and gate of the 4c hidden layer
    block("ff.net.2").linear(c, 4 * c)
    for norm in ("norm1", "norm2", "norm3"):
        block(norm).norm(c)
    s("proj_out").conv(c, c, 1)


def _unet(s: _Scope) -> None:
    s("time_embed.0", "time_embedding.linear_1").linear(_TIME_DIM, _UNET_CHANNELS)
    s("time_embed.2", "time_embedding.linear_2").linear(_TIME_DIM, _TIME_DIM)
    s("input_blocks.0.0", "conv_in").conv(_UNET_CHANNELS, 4)

    # The original numbers the blocks of each half in one sequence; diffusers nests them per level.
    # The coarsest level has neither attention nor a downsampler.
    skips, ch, i = [_UNET_CHANNELS], _UNET_CHANNELS, 1
    for level, mult in enumerate(_UNET_MULT):
        out = _UNET_CHANNELS * mult
        for j in range(2):
            _unet_resblock(s(f"input_blocks.{i}.0", f"down_blocks.{level}.resnets.{j}"), ch, out)
            ch = out
            if level < 3:
                _spatial_transformer(s(f"input_blocks.{i}.1", f"down_blocks.{level}.attentions.{j}"), ch)
            skips.append(ch)
            i += 1
        if level < 3:
            s(f"input_blocks.{i}.0.op", f"down_blocks.{level}.downsamplers.0.conv").conv(ch, ch)
            skips.append(ch)
            i += 1

    _unet_resblock(s("middle_block.0", "mid_block.resnets.0"), ch, ch)
    _spatial_transformer(s("middle_block.1", "mid_block.attentions.0"), ch)
    _unet_resblock(s("middle_block.2", "mid_block.resnets.1"), ch, ch)

    i = 0
    for up, mult in enumerate(reversed(_UNET_MULT)):
        out = _UNET_CHANNELS * mult
        for j in range(3):
            _unet_resblock(s(f"output_blocks.{i}.0", f"up_blocks.{up}.resnets.{j}"), ch + skips.pop(), out)
            ch = out
            if up > 0:
                _spatial_transformer(s(f"output_blocks.{i}.1", f"up_blocks.{up}.attentions.{j}"), ch)
            i += 1
        if up < 3:
            # The upsampler follows the last block's attention, or its resnet where there is none.
            s(f"output_blocks.{i - 1}.{2 if up > 0 else 1}.conv", f"up_blocks.{up}.upsamplers.0.conv").conv(ch, ch)

    s("out.0", "conv_norm_out").norm(_UNET_CHANNELS)
    s("out.2", "conv_out").conv(4, _UNET_CHANNELS)


def _vae_resblock(s: _Scope, cin: int, cout: int) -> None:
    s("norm1").norm(cin)
    s("conv1").conv(cout, cin)
    s("norm2").norm(cout)
    s("conv2").conv(cout, cout)
    if cin != cout:
        s("nin_shortcut", "conv_shortcut").conv(cout, cin, 1)


def _vae_mid(s: _Scope, c: int) -> None:
    _vae_resblock(s("mid.block_1", "mid_block.resnets.0"), c, c)
    attn = s("mid.attn_1", "mid_block.attentions.0")
    attn("norm", "group_norm").norm(c)
    for original, diffusers in (("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("proj_out", "to_out.0")):
        attn(original, diffusers).conv1x1_or_linear(c)
    _vae_resblock(s("mid.block_2", "mid_block.resnets.1"), c, c)


def _vae(s: _Scope) -> None:
    enc = s("encoder")
    enc("conv_in").conv(_VAE_CHANNELS, 3)
    ch = _VAE_CHANNELS
    for level, mult in enumerate(_VAE_MULT):
        for j in range(2):
            _vae_resblock(enc(f"down.{level}.block.{j}", f"down_blocks.{level}.resnets.{j}"), ch, _VAE_CHANNELS * mult)
            ch = _VAE_CHANNELS * mult
        if level < 3:
            enc(f"down.{level}.downsample.conv", f"down_blocks.{level}.downsamplers.0.conv").conv(ch, ch)
    _vae_mid(enc, ch)
    enc("norm_out", "conv_norm_out").norm(ch)
    enc("conv_out").conv(2 * _LATENT, ch)  # mean and log-variance

    s("quant_conv").conv(2 * _LATENT, 2 * _LATENT, 1)
    s("post_quant_conv").conv(_LATENT, _LATENT, 1)

    dec = s("decoder")
    dec("conv_in").conv(ch, _LATENT)
    _vae_mid(dec, ch)
    # The original numbers decoder levels by resolution (up.3 is the coarsest); diffusers by order.
    for up, mult in enumerate(reversed(_VAE_MULT)):
        level = 3 - up
        for j in range(3):
            _vae_resblock(dec(f"up.{level}.block.{j}", f"up_blocks.{up}.resnets.{j}"), ch, _VAE_CHANNELS * mult)
            ch = _VAE_CHANNELS * mult
        if level > 0:
            dec(f"up.{level}.upsample.conv", f"up_blocks.{up}.upsamplers.0.conv").conv(ch, ch)
    dec("norm_out", "conv_norm_out").norm(ch)
    dec("conv_out").conv(3, ch)


def _clip_text(s: _Scope) -> None:
    # Real checkpoints keep the "text_model." level (transformers 5 drops it when saving); the engine
    # finds the text encoder, and so the SD version, only under names that have it.
    text = s("text_model")
    text("embeddings.token_embedding").embedding(_CLIP_VOCAB, _CLIP_DIM)
    text("embeddings.position_embedding").embedding(_CLIP_POSITIONS, _CLIP_DIM)
    text("embeddings").position_ids(_CLIP_POSITIONS)
    for n in range(_CLIP_LAYERS):
        layer = text(f"encoder.layers.{n}")
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            layer(f"self_attn.{proj}").linear(_CLIP_DIM, _CLIP_DIM)
        layer("layer_norm1").norm(_CLIP_DIM)
        layer("mlp.fc1").linear(_CLIP_MLP, _CLIP_DIM)
        layer("mlp.fc2").linear(_CLIP_DIM, _CLIP_MLP)
        layer("layer_norm2").norm(_CLIP_DIM)
    text("final_layer_norm").norm(_CLIP_DIM)


# diffusers component -> (its prefix in the single-file checkpoint, builder, file in the diffusers folder)
_COMPONENTS = {
    "unet": ("model.diffusion_model", _unet, "diffusion_pytorch_model.safetensors"),
    "vae": ("first_stage_model", _vae, "diffusion_pytorch_model.safetensors"),
    "text_encoder": ("cond_stage_model.transformer", _clip_text, "model.safetensors"),
}
LAYOUTS = ("original", *(f"diffusers-{name}" for name in _COMPONENTS))


@functools.lru_cache(maxsize=None)
def _params(component: str) -> tuple[_Param, ...]:
    prefix, build, _ = _COMPONENTS[component]
    params: list[_Param] = []
    build(_Scope(params, prefix, ""))
    return tuple(params)


def sd15_tensors(layout: str, dtype=np.float16, seed: int = 0) -> dict[str, RandomTensor]:
    """Names and lazy values of one SD1.5 layout (see :data:`LAYOUTS`), in a stable order.

    ``np.asarray(value)`` gives the array; integer buffers stay int64 whatever ``dtype`` is.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    diffusers = layout != "original"
    components = [layout.removeprefix("diffusers-")] if diffusers else list(_COMPONENTS)
    tensors = {}
    for component in components:
        for p in _params(component):
            if diffusers and p.diffusers is None:
                continue
            tensor_dtype = np.int64 if p.init == "position_ids" else dtype
            shape = p.diffusers_shape if diffusers else p.shape
            tensors[p.diffusers if diffusers else p.original] = RandomTensor(p.original, shape, tensor_dtype, p.init, seed)
    return tensors


# ---------------------------------------------------------------------------------------------------
# Files

_METADATA = {"format": "pt"}  # what torch-side savers write; transformers refuses files without a known format

_DIFFUSERS_VERSION = "0.6.0"  # the version the SD1.5 release was converted with

_UNET_CONFIG = {
    "_class_name": "UNet2DConditionModel",
    "_diffusers_version": _DIFFUSERS_VERSION,
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [_UNET_CHANNELS * m for m in _UNET_MULT],
    "center_input_sample": False,
    "cross_attention_dim": _CONTEXT_DIM,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

_VAE_CONFIG = {
    "_class_name": "AutoencoderKL",
    "_diffusers_version": _DIFFUSERS_VERSION,
    "act_fn": "silu",
    "block_out_channels": [_VAE_CHANNELS * m for m in _VAE_MULT],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": _LATENT,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

_TEXT_ENCODER_CONFIG = {  # the release's own, odd token ids included (they only affect the pooled output)
    "_name_or_path": "openai/clip-vit-large-patch14",
    "architectures": ["CLIPTextModel"],
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": _CLIP_DIM,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": _CLIP_MLP,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": _CLIP_POSITIONS,
    "model_type": "clip_text_model",
    "num_attention_heads": 12,
    "num_hidden_layers": _CLIP_LAYERS,
    "pad_token_id": 1,
    "projection_dim": 768,
    "transformers_version": "4.22.0.dev0",
    "vocab_size": _CLIP_VOCAB,
}

_SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": _DIFFUSERS_VERSION,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

# No tokenizer, safety checker or feature extractor is written: the engine carries its own CLIP vocabulary,
# and a diffusers pipeline is handed a tokenizer by whoever loads it.
_MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": _DIFFUSERS_VERSION,
    "feature_extractor": [None, None],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": [None, None],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def write_sd15_single_file(path, *, dtype=np.float16, seed: int = 0) -> Path:
    """An original-layout SD1.5 checkpoint (about 2.1 GB in float16) at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, sd15_tensors("original", dtype, seed), _METADATA)
    return path


def write_sd15_diffusers(folder, *, dtype=np.float16, seed: int = 0) -> Path:
    """A diffusers SD1.5 folder (model_index.json, unet/, vae/, text_encoder/, scheduler/) at ``folder``."""
    folder = Path(folder)
    configs = {
        "unet": _UNET_CONFIG,
        "vae": _VAE_CONFIG,
        "text_encoder": {**_TEXT_ENCODER_CONFIG, "torch_dtype": np.dtype(dtype).name},
    }
    for component, (_, _, filename) in _COMPONENTS.items():
        _write_json(folder / component / "config.json", configs[component])
        write_safetensors(folder / component / filename, sd15_tensors(f"diffusers-{component}", dtype, seed), _METADATA)
    _write_json(folder / "scheduler" / "scheduler_config.json", _SCHEDULER_CONFIG)
    _write_json(folder / "model_index.json", _MODEL_INDEX)
    return folder


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write a random-weight SD 1.5 model (no real weights needed).")
    parser.add_argument("path", type=Path, help="a .safetensors file, or a folder for --layout diffusers")
    parser.add_argument("--layout", choices=("single-file", "diffusers"), default="single-file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write = write_sd15_diffusers if args.layout == "diffusers" else write_sd15_single_file
    print(write(args.path, seed=args.seed))
