"""Random-weight Stable Diffusion models, written with numpy alone.

The architecture, tensor names and shapes are those of the real releases. This module holds the
machinery and SD1.5; ``models_sdxl.py`` holds SDXL base 1.0 on the same machinery. SD1.5 comes in
two layouts:

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

``python tests/models.py PATH [--layout diffusers] [--family sd15|sdxl]`` writes one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import struct
import sys
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

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
# pool must hold the largest tensor (SD1.5: the CLIP token embedding, 49408 x 768 = 38M values; SDXL:
# OpenCLIP bigG's, 49408 x 1280 = 63M).
_POOL_SIZE = 1 << 26


@functools.lru_cache(maxsize=1)
def _pool(seed: int) -> np.ndarray:
    pool = np.random.default_rng(seed).standard_normal(_POOL_SIZE, dtype=np.float32)
    pool.flags.writeable = False
    return pool


class RandomTensor:
    """A seeded random tensor that takes memory only when ``np.asarray()`` is called on it.

    ``key`` (the tensor's name in the original layout) picks the slice of the seed's pool, so a
    renamed or reshaped copy of a tensor holds the same values. A copy that is only part of the
    original, or its transpose, gives the original's shape as ``source_shape`` and says in ``view``
    how it is cut: ``("rows", start, stop)`` (one of q/k/v in a fused in_proj) or ``("T",)``.
    """

    __slots__ = ("key", "shape", "dtype", "init", "seed", "source_shape", "view")

    def __init__(
        self,
        key: str,
        shape: tuple[int, ...],
        dtype,
        init: str,
        seed: int,
        source_shape: tuple[int, ...] | None = None,
        view: tuple = (),
    ):
        self.key, self.shape, self.dtype, self.init, self.seed = key, tuple(shape), np.dtype(dtype), init, seed
        self.source_shape = tuple(self.shape if source_shape is None else source_shape)
        self.view = tuple(view)

    def __repr__(self) -> str:
        cut = f", source_shape={self.source_shape}, view={self.view}" if self.view else ""
        return f"RandomTensor({self.key!r}, shape={self.shape}, dtype={self.dtype}, init={self.init!r}{cut})"

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if copy is False:
            raise ValueError("a RandomTensor is computed afresh on every conversion")
        shape = self.source_shape
        n = math.prod(shape)
        if self.init == "position_ids":
            values = np.arange(n, dtype=np.int64)
        else:
            pool = _pool(self.seed)
            digest = hashlib.blake2b(self.key.encode(), digest_size=8).digest()
            start = int.from_bytes(digest, "little") % (pool.size - n + 1)
            values = pool[start : start + n]
            if self.init == "weight":  # N(0, 1/fan_in) keeps each layer's output variance near its input's
                values = values * np.float32(1 / math.sqrt(math.prod(shape[1:])))
            elif self.init == "norm":  # near 1, but not 1, so a swapped norm changes the output
                values = values * np.float32(0.1) + np.float32(1)
            elif self.init == "logit_scale":  # CLIP's learned temperature, log(100) once trained
                values = np.full(n, math.log(100), np.float32)
            else:  # "bias", "embedding"
                values = values * np.float32(0.02)
        values = values.astype(dtype or self.dtype, copy=False)
        if self.view:
            values = values.reshape(shape)
            if self.view[0] == "rows":
                values = values[self.view[1] : self.view[2]]
            elif self.view == ("T",):
                values = np.ascontiguousarray(values.T)
            else:
                raise ValueError(f"{self.key}: unknown view {self.view}")
        return values.reshape(self.shape)


# ---------------------------------------------------------------------------------------------------
# Architecture


class _Param(NamedTuple):
    original: str  # the name in the single file, from which the values are drawn
    diffusers: str | None  # None: absent from the diffusers layout
    shape: tuple[int, ...]
    diffusers_shape: tuple[int, ...]
    init: str  # "weight" | "bias" | "norm" | "embedding" | "position_ids" | "logit_scale"
    # A diffusers tensor cut from an original one (see RandomTensor.view) is recorded apart from it,
    # with in_original=False, so that the original is written once.
    in_original: bool = True
    view: tuple = ()


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

    def param(self, original: str, diffusers: str | None, shape, init: str) -> None:
        """A tensor whose leaf names differ between the layouts; ``diffusers=None``: original only."""
        self.params.append(
            _Param(_join(self.original, original), diffusers and _join(self.diffusers, diffusers), shape, shape, init)
        )

    def cut(self, original: str, diffusers: str, shape, init: str, view: tuple) -> None:
        """A diffusers tensor cut (``view``, see RandomTensor) from the original tensor ``original``,
        which is recorded on its own, with ``param(original, None, ...)``."""
        cut_shape = (view[2] - view[1], *shape[1:]) if view[0] == "rows" else tuple(reversed(shape))
        self.params.append(
            _Param(_join(self.original, original), _join(self.diffusers, diffusers), shape, cut_shape, init, False, view)
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


def _spatial_transformer(s: _Scope, c: int, context_dim: int, depth: int = 1, linear: bool = False) -> None:
    s("norm").norm(c)
    # SD1.x: 1x1 convolutions (use_linear_projection=False); SDXL: Linear layers.
    s("proj_in").linear(c, c) if linear else s("proj_in").conv(c, c, 1)
    for d in range(depth):
        block = s(f"transformer_blocks.{d}")
        for attn, context in (("attn1", c), ("attn2", context_dim)):
            block(f"{attn}.to_q").linear(c, c, bias=False)
            block(f"{attn}.to_k").linear(c, context, bias=False)
            block(f"{attn}.to_v").linear(c, context, bias=False)
            block(f"{attn}.to_out.0").linear(c, c)
        block("ff.net.0.proj").linear(8 * c, c)  # GEGLU: value and gate of the 4c hidden layer
        block("ff.net.2").linear(c, 4 * c)
        for norm in ("norm1", "norm2", "norm3"):
            block(norm).norm(c)
    s("proj_out").linear(c, c) if linear else s("proj_out").conv(c, c, 1)


def _ldm_unet(
    s: _Scope,
    *,
    mult: tuple[int, ...],
    depths: tuple[int, ...],
    mid_depth: int,
    context_dim: int,
    linear: bool = False,
    adm_in_channels: int | None = None,
) -> None:
    """The LDM UNet (openaimodel.py), two resblocks per level: ``depths[level]`` transformer blocks
    follow each resblock of a level (0: no attention there); ``adm_in_channels`` adds SDXL's
    ``label_emb`` (diffusers: ``add_embedding``) for the pooled text and size conditioning."""
    s("time_embed.0", "time_embedding.linear_1").linear(_TIME_DIM, _UNET_CHANNELS)
    s("time_embed.2", "time_embedding.linear_2").linear(_TIME_DIM, _TIME_DIM)
    if adm_in_channels:
        s("label_emb.0.0", "add_embedding.linear_1").linear(_TIME_DIM, adm_in_channels)
        s("label_emb.0.2", "add_embedding.linear_2").linear(_TIME_DIM, _TIME_DIM)
    s("input_blocks.0.0", "conv_in").conv(_UNET_CHANNELS, 4)

    # The original numbers the blocks of each half in one sequence; diffusers nests them per level.
    # The coarsest level has no downsampler.
    last = len(mult) - 1
    skips, ch, i = [_UNET_CHANNELS], _UNET_CHANNELS, 1
    for level, m in enumerate(mult):
        out = _UNET_CHANNELS * m
        for j in range(2):
            _unet_resblock(s(f"input_blocks.{i}.0", f"down_blocks.{level}.resnets.{j}"), ch, out)
            ch = out
            if depths[level]:
                block = s(f"input_blocks.{i}.1", f"down_blocks.{level}.attentions.{j}")
                _spatial_transformer(block, ch, context_dim, depths[level], linear)
            skips.append(ch)
            i += 1
        if level < last:
            s(f"input_blocks.{i}.0.op", f"down_blocks.{level}.downsamplers.0.conv").conv(ch, ch)
            skips.append(ch)
            i += 1

    _unet_resblock(s("middle_block.0", "mid_block.resnets.0"), ch, ch)
    _spatial_transformer(s("middle_block.1", "mid_block.attentions.0"), ch, context_dim, mid_depth, linear)
    _unet_resblock(s("middle_block.2", "mid_block.resnets.1"), ch, ch)

    i = 0
    for up, m in enumerate(reversed(mult)):
        out, depth = _UNET_CHANNELS * m, depths[last - up]
        for j in range(3):
            _unet_resblock(s(f"output_blocks.{i}.0", f"up_blocks.{up}.resnets.{j}"), ch + skips.pop(), out)
            ch = out
            if depth:
                block = s(f"output_blocks.{i}.1", f"up_blocks.{up}.attentions.{j}")
                _spatial_transformer(block, ch, context_dim, depth, linear)
            i += 1
        if up < last:
            # The upsampler follows the last block's attention, or its resnet where there is none.
            s(f"output_blocks.{i - 1}.{2 if depth else 1}.conv", f"up_blocks.{up}.upsamplers.0.conv").conv(ch, ch)

    s("out.0", "conv_norm_out").norm(_UNET_CHANNELS)
    s("out.2", "conv_out").conv(4, _UNET_CHANNELS)


def _unet(s: _Scope) -> None:
    # The coarsest level has no attention.
    _ldm_unet(s, mult=_UNET_MULT, depths=(1, 1, 1, 0), mid_depth=1, context_dim=_CONTEXT_DIM)


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
_Components = Mapping[str, "tuple[str, Callable[[_Scope], None], str]"]
_COMPONENTS: _Components = {
    "unet": ("model.diffusion_model", _unet, "diffusion_pytorch_model.safetensors"),
    "vae": ("first_stage_model", _vae, "diffusion_pytorch_model.safetensors"),
    "text_encoder": ("cond_stage_model.transformer", _clip_text, "model.safetensors"),
}
LAYOUTS = ("original", *(f"diffusers-{name}" for name in _COMPONENTS))


@functools.lru_cache(maxsize=None)
def _params(prefix: str, build: Callable[[_Scope], None]) -> tuple[_Param, ...]:
    params: list[_Param] = []
    build(_Scope(params, prefix, ""))
    return tuple(params)


def _tensors(components: _Components, layout: str, dtype, seed: int) -> dict[str, RandomTensor]:
    """Names and lazy values of one layout of a model made of ``components``, in a stable order."""
    layouts = ("original", *(f"diffusers-{name}" for name in components))
    if layout not in layouts:
        raise ValueError(f"unknown layout {layout!r}; expected one of {layouts}")
    diffusers = layout != "original"
    names = [layout.removeprefix("diffusers-")] if diffusers else list(components)
    tensors = {}
    for component in names:
        prefix, build, _ = components[component]
        for p in _params(prefix, build):
            if (p.diffusers is None) if diffusers else not p.in_original:
                continue
            tensor_dtype = np.int64 if p.init == "position_ids" else dtype
            if diffusers:
                value = RandomTensor(p.original, p.diffusers_shape, tensor_dtype, p.init, seed, p.shape, p.view)
            else:
                value = RandomTensor(p.original, p.shape, tensor_dtype, p.init, seed)
            tensors[p.diffusers if diffusers else p.original] = value
    return tensors


def sd15_tensors(layout: str, dtype=np.float16, seed: int = 0) -> dict[str, RandomTensor]:
    """Names and lazy values of one SD1.5 layout (see :data:`LAYOUTS`), in a stable order.

    ``np.asarray(value)`` gives the array; integer buffers stay int64 whatever ``dtype`` is.
    """
    return _tensors(_COMPONENTS, layout, dtype, seed)


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


def _write_single_file(path, components: _Components, dtype, seed: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, _tensors(components, "original", dtype, seed), _METADATA)
    return path


def _write_diffusers(folder, components: _Components, configs: Mapping[str, dict], dtype, seed: int) -> Path:
    """Each component's weights and config.json, then the other files of ``configs`` (its keys
    other than the components', e.g. ``"scheduler/scheduler_config.json"``), at ``folder``."""
    folder = Path(folder)
    for component, (_, _, filename) in components.items():
        _write_json(folder / component / "config.json", configs[component])
        tensors = _tensors(components, f"diffusers-{component}", dtype, seed)
        write_safetensors(folder / component / filename, tensors, _METADATA)
    for name, config in configs.items():
        if name not in components:
            _write_json(folder / name, config)
    return folder


def build_once(path, write) -> Path:
    """``write(path)`` unless an earlier call finished it (a ``.done`` marker beside it): the models are
    large, and a build cut short must not pass for a finished one."""
    path = Path(path)
    done = path.with_name(path.name + ".done")
    if not done.exists():
        write(path)
        done.touch()
    return path


def write_sd15_single_file(path, *, dtype=np.float16, seed: int = 0) -> Path:
    """An original-layout SD1.5 checkpoint (about 2.1 GB in float16) at ``path``."""
    return _write_single_file(path, _COMPONENTS, dtype, seed)


def write_sd15_diffusers(folder, *, dtype=np.float16, seed: int = 0) -> Path:
    """A diffusers SD1.5 folder (model_index.json, unet/, vae/, text_encoder/, scheduler/) at ``folder``."""
    configs = {
        "unet": _UNET_CONFIG,
        "vae": _VAE_CONFIG,
        "text_encoder": {**_TEXT_ENCODER_CONFIG, "torch_dtype": np.dtype(dtype).name},
        "scheduler/scheduler_config.json": _SCHEDULER_CONFIG,
        "model_index.json": _MODEL_INDEX,
    }
    return _write_diffusers(folder, _COMPONENTS, configs, dtype, seed)


def main(argv: list[str] | None = None) -> None:
    import argparse

    from . import models_sdxl

    writers = {
        ("sd15", "single-file"): write_sd15_single_file,
        ("sd15", "diffusers"): write_sd15_diffusers,
        ("sdxl", "single-file"): models_sdxl.write_sdxl_single_file,
        ("sdxl", "diffusers"): models_sdxl.write_sdxl_diffusers,
    }
    parser = argparse.ArgumentParser(description="Write a random-weight SD 1.5 or SDXL model (no real weights needed).")
    parser.add_argument("path", type=Path, help="a .safetensors file, or a folder for --layout diffusers")
    parser.add_argument("--layout", choices=("single-file", "diffusers"), default="single-file")
    parser.add_argument("--family", choices=("sd15", "sdxl"), default="sd15")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(writers[args.family, args.layout](args.path, dtype=np.dtype(args.dtype), seed=args.seed))


if __name__ == "__main__":
    # Run as a script: import this file as the package module tests.models, whose SDXL part imports it.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.models import main as package_main

    package_main()
