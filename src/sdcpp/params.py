"""The parameters of one generation, defined once.

:class:`GenerationParams` is the single definition: each field carries its type, default, bounds and
help text. :meth:`Generator.generate` takes it (or its fields as keyword arguments), it validates
itself when made, fills the engine's bound struct ``_core.GenerationParams`` field by field
(:func:`to_core`), is what a generated image's metadata holds (:meth:`GenerationParams.to_dict`),
and the ``sdcpp generate`` command line's options are built from its fields. A group of settings
that is used together or not at all (:class:`HiresFix`) is one field holding a frozen dataclass of
the same kind, with its own bound struct.

Adding a setting is one field here and one line in cpp/params.h.
"""

from __future__ import annotations

import collections.abc
import enum
import functools
import math
import os
import typing
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, TypeVar, Union

import numpy as np
from PIL import Image

from . import _core
from .errors import InvalidArgumentError
from .images import ImageInput, input_pixels, reference_pixels
from .names import CacheMode, HiresUpscaler, PreviewMode, Sampler, Scheduler
from .photomaker import check_id_embedding, check_trigger

if TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    _P = ParamSpec("_P")

__all__ = [
    "GenerationParams", "HiresFix", "PreviewCallback", "ProgressCallback", "SkipLayerGuidance", "VaeTiling", "VideoParams",
    "check_field", "check_seed", "to_core",
]

#: ``progress(step, steps, seconds_per_step)``, called on the generating thread (step 0 at the start).
ProgressCallback = Callable[[int, int, float], object]
#: ``preview(step, image)``: an RGB PIL image of the latent at that step, on the generating thread.
PreviewCallback = Callable[[int, Image.Image], object]

# The engine's prompt parsing and tokenizing slow down sharply past this (a 10k-character prompt
# took 2.5 s to encode, a 100k-character one did not finish in 5 minutes).
_MAX_PROMPT_CHARS = 10_000
SEED_LIMIT = 2**63  # the engine's seed is an int64_t, and image i of a batch uses seed + i

# A field is a setting (recorded in the image's metadata, passed to the engine's struct, a command
# line option) or an input (an image or a callback, handed to the engine call beside the struct).
_SETTING, _INPUT = "setting", "input"


def _setting(
    default: Any, help: str, *, min: Optional[float] = None, max: Optional[float] = None, unset: Any = None,
    check: Optional[Callable[[Any, Any], None]] = None, factory: Optional[Callable[[], Any]] = None,
) -> Any:
    """A setting: ``unset`` is the engine's value for None, ``check(params, value)`` a further check;
    ``factory`` makes the default of a mutable type."""
    meta = {"role": _SETTING, "help": help, "min": min, "max": max, "unset": unset, "check": check}
    return field(default_factory=factory, metadata=meta) if factory else field(default=default, metadata=meta)


def _input(help: str) -> Any:
    return field(default=None, compare=False, repr=False, metadata={"role": _INPUT, "help": help})


def _check_text(params: GenerationParams, name: str) -> None:
    text = getattr(params, name)
    if len(text) > _MAX_PROMPT_CHARS:
        raise InvalidArgumentError(
            f"{name}: {len(text)} characters is more than the {_MAX_PROMPT_CHARS} allowed; "
            "the text encoder only sees about 75 tokens per chunk anyway"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgumentError(
            f"{name}: is not valid Unicode text (unpaired surrogate at index {e.start}); "
            "decode bytes with errors='replace' first"
        ) from None


def check_seed(seed: int, batch: int, random: bool = True) -> None:
    """Refuse a seed the engine's int64 cannot hold for every image of the batch (-1: random)."""
    lowest = -1 if random else 0
    if not is_int(seed) or not lowest <= seed <= SEED_LIMIT - batch:
        raise InvalidArgumentError(
            f"seed: must be {'-1 (random) or ' if random else ''}an integer from 0 to 2**63 - {batch}, not {seed!r}"
        )


def _check_number(group: str, name: str, value: Any, lo: float, hi: float = math.inf, integer: bool = False) -> None:
    ok = is_int(value) if integer else is_number(value) and math.isfinite(value)
    if not ok or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        bound = f"from {lo} to {hi}" if math.isfinite(hi) else f"at least {lo}"
        raise InvalidArgumentError(f"{group}.{name}: must be {kind} {bound}, not {value!r}")


@dataclass(frozen=True)
class VaeTiling:
    """VAE tiling (``generate(vae_tiling=VaeTiling(...))``, or ``True`` for these defaults): the image is
    decoded (and an init image encoded) in overlapping tiles, so that the VAE's working memory is that
    of one tile. The fields are the engine's ``sd_tiling_params_t``; sizes are in latent pixels (1/8 of
    the image's for SD 1.x/2.x/XL)."""

    #: Tile width; 0: the engine's default, 32 (256 image pixels).
    tile_size_x: int = 0
    #: Tile height; 0: the engine's default, 32.
    tile_size_y: int = 0
    #: Overlap of neighbouring tiles, a fraction of a tile from 0 to 0.5.
    target_overlap: float = 0.5
    #: Tile width relative to the latent: a fraction of it (<= 1) or a number of tiles (> 1); 0: use tile_size_x.
    rel_size_x: float = 0.0
    #: Tile height relative to the latent, as rel_size_x; 0: use tile_size_y.
    rel_size_y: float = 0.0

    def __post_init__(self) -> None:
        _check_number("vae_tiling", "tile_size_x", self.tile_size_x, 0, integer=True)
        _check_number("vae_tiling", "tile_size_y", self.tile_size_y, 0, integer=True)
        _check_number("vae_tiling", "target_overlap", self.target_overlap, 0, 0.5)
        _check_number("vae_tiling", "rel_size_x", self.rel_size_x, 0)
        _check_number("vae_tiling", "rel_size_y", self.rel_size_y, 0)


@dataclass(frozen=True)
class SkipLayerGuidance:
    """Skip-layer guidance (the engine's ``sd_slg_params_t``, for DiT models such as SD3): between
    ``layer_start`` and ``layer_end`` (fractions of the sampling), the prediction is pushed away from
    one made without ``layers``, by ``scale``."""

    #: The diffusion model's blocks skipped for the guiding prediction.
    layers: tuple[int, ...] = (7, 8, 9)
    layer_start: float = 0.01
    layer_end: float = 0.2
    scale: float = 2.5

    def __post_init__(self) -> None:
        if isinstance(self.layers, (str, bytes)) or not isinstance(self.layers, collections.abc.Iterable):
            raise InvalidArgumentError(f"slg.layers: must be a sequence of block indices, not {self.layers!r}")
        object.__setattr__(self, "layers", tuple(self.layers))
        for layer in self.layers:
            _check_number("slg", "layers", layer, 0, integer=True)
        _check_number("slg", "layer_start", self.layer_start, 0, 1)
        _check_number("slg", "layer_end", self.layer_end, self.layer_start, 1)
        _check_number("slg", "scale", self.scale, -math.inf)


@dataclass(frozen=True)
class HiresFix:
    """Hires fix: after the first pass, enlarge its result and sample it again at the larger size.

    As AUTOMATIC1111's "Hires. fix": the first pass composes at the size the model was trained for,
    the second adds detail at the target size, repainting ``denoising_strength`` of the enlarged
    image. The target is ``width`` x ``height`` when given, else the first pass's size times
    ``scale``; it must be a multiple of ``Generator.size_multiple``. Used as
    ``generate(..., hires=HiresFix(scale=2))`` (or a dict of these fields; ``--hires scale=2,steps=10`` on the
    command line).
    """

    scale: float = _setting(2.0, "the target is the first pass's size times this, unless width and height are given",
                            min=1, max=8)
    width: Optional[int] = _setting(None, "target width in pixels (with height); None: from scale", min=1, unset=0)
    height: Optional[int] = _setting(None, "target height in pixels (with width); None: from scale", min=1, unset=0)
    steps: Optional[int] = _setting(None, "sampling steps of the second pass; None: as many as the first",
                                    min=1, max=10_000, unset=0)
    denoising_strength: float = _setting(0.7, "how much of the enlarged image the second pass repaints",
                                         min=0.01, max=1)
    upscaler: Union[HiresUpscaler, str, None] = _setting(
        None, "how the first pass's result is enlarged (HiresUpscaler); None: 'Model' when model is given, else "
        "'Latent'", unset="",
    )
    model: Optional[str] = _setting(None, "ESRGAN model file for upscaler 'Model' (see sdcpp.Upscaler)", unset="")
    tile_size: int = _setting(128, "upscaler 'Model' runs on tiles of this many pixels: less memory", min=16, max=1024)

    def __post_init__(self) -> None:
        if isinstance(self.model, os.PathLike):
            object.__setattr__(self, "model", os.fspath(self.model))
        try:
            _check_fields(self)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"hires.{e}") from None
        if (self.width is None) != (self.height is None):
            raise InvalidArgumentError("hires.width, hires.height: give both, or neither to use hires.scale")
        if self.upscaler is None:
            object.__setattr__(self, "upscaler", HiresUpscaler.MODEL if self.model else HiresUpscaler.LATENT)
        if self.upscaler is HiresUpscaler.MODEL and not self.model:
            raise InvalidArgumentError("hires.model: upscaler 'Model' needs an ESRGAN file: HiresFix(model=PATH)")
        if self.model and self.upscaler is not HiresUpscaler.MODEL:
            raise InvalidArgumentError(
                f"hires.model: only upscaler 'Model' uses a model, not {self.upscaler.value!r}; leave upscaler unset"
            )

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The target size for a first pass of ``width`` x ``height`` (as the engine computes it)."""
        if self.width is not None and self.height is not None:
            return self.width, self.height
        return round(width * self.scale), round(height * self.scale)


def _check_frames(params: Any, frames: int) -> None:
    if (frames - 1) % 4:
        below = (frames - 1) // 4 * 4 + 1
        raise InvalidArgumentError(
            f"frames: Wan makes 4k + 1 frames (1, 5, 9, ..., 33, ...), not {frames}; pass {below} or {below + 4}"
        )


@dataclass(frozen=True)
class VideoParams:
    """A video's own settings; the others (prompt, size, steps, seed, ...) are :class:`GenerationParams`'.

    Given to :meth:`Generator.generate_video` as keyword arguments (``frames=33``) or as ``video=``.
    The high-noise settings are for Wan 2.2's two experts (``Generator(high_noise_diffusion_model=...)``):
    the high-noise model samples the steps whose noise level is above ``moe_boundary``.
    """

    frames: int = _setting(33, "number of frames, 4k + 1 (Wan's VAE makes 4 frames per latent frame, plus the "
                           "first)", min=1, max=1001, check=_check_frames)
    high_noise_steps: Optional[int] = _setting(
        None, "Wan 2.2: steps of the high-noise model; None: those above moe_boundary", min=1, max=10_000, unset=-1)
    high_noise_cfg_scale: Optional[float] = _setting(
        None, "Wan 2.2: the high-noise model's CFG scale; None: cfg_scale", min=0, unset=math.inf)
    high_noise_sampler: Union[Sampler, str, None] = _setting(
        None, "Wan 2.2: the high-noise model's sampler; None: the engine's default", unset="")
    moe_boundary: float = _setting(0.875, "Wan 2.2: the noise level where the low-noise model takes over",
                                   min=0, max=1)

    def __post_init__(self) -> None:
        _check_fields(self)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values, as a video's frames record them."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class GenerationParams:
    """The settings and inputs of one generation; see each field's ``help`` (``describe()``).

    Made directly or from :meth:`Generator.generate`'s arguments; it checks itself when made and
    raises :class:`sdcpp.InvalidArgumentError` naming the field. Images are stored as checked uint8
    arrays. Settings left ``None`` take the model's default when generating; a generated image's
    ``params`` holds the values used.
    """

    prompt: str = _setting(MISSING, "what to draw; the engine's emphasis syntax (word:1.2) is understood",
                           check=lambda p, _: _check_text(p, "prompt"))
    negative_prompt: str = _setting("", "what to steer away from", check=lambda p, _: _check_text(p, "negative_prompt"))
    # None for the settings below: the model family's default (Generator.defaults), resolved when generating.
    # ``unset`` is the engine's own default, which only a caller of to_core() without a Generator sees.
    width: Optional[int] = _setting(
        None, "image width in pixels, a multiple of Generator.size_multiple (64 for SD 1.x/2.x/XL); None: "
        "the input image's, else the model's default (512 for SD 1.x, 768 for SD 2.x 768-v, 1024 for SDXL)",
        min=1, unset=512,
    )
    height: Optional[int] = _setting(None, "image height in pixels, a multiple of Generator.size_multiple; None: as width",
                                     min=1, unset=512)
    steps: Optional[int] = _setting(None, "sampling steps; None: the model's default", min=1, max=10_000, unset=20)
    cfg_scale: Optional[float] = _setting(None, "classifier-free guidance scale; None: the model's default",
                                          unset=7.0)
    guidance: Optional[float] = _setting(
        None, "distilled guidance of guidance-distilled models (Flux.1 dev: 3.5); None: the model's default, "
        "ignored by models without it", unset=3.5,
    )
    flow_shift: Optional[float] = _setting(
        None, "noise schedule shift of flow models (SD3.x, Flux, Qwen-Image, Z-Image, Wan); None: the model's "
        "default; refused for UNet models, which have none", min=0, unset=math.inf,
    )
    sampler: Union[Sampler, str, None] = _setting(None, "sampling method; None: the model's default", unset="")
    scheduler: Union[Scheduler, str, None] = _setting(None, "noise schedule; None: the sampler's default", unset="")
    seed: int = _setting(-1, "image i of the batch uses seed + i; -1 draws a random seed",
                         check=lambda p, seed: check_seed(seed, p.batch))
    batch: int = _setting(1, "number of images", min=1, max=64)
    clip_skip: Optional[int] = _setting(
        None, "skip the last clip_skip - 1 text-encoder layers; None: the model's default", min=1, unset=-1
    )
    strength: float = _setting(0.75, "image to image: how much of init_image is repainted", min=0, max=1)
    control_strength: float = _setting(0.9, "weight of the ControlNet's condition (needs Generator(control_net=...))",
                                       min=0, max=10)
    # Reference images (ref_images below): in-context references of Flux Kontext, Flux.2, Qwen-Image Edit.
    auto_resize_ref_image: bool = _setting(
        True, "with ref_images: scale each reference to the output's area (at most 1024x1024) before encoding it, "
        "keeping its aspect ratio, as sd-cli does; off: each is encoded at its own size, a multiple of "
        "Generator.size_multiple",
    )
    increase_ref_index: bool = _setting(
        False, "with ref_images: give each reference its own index in the positional embedding (1, 2, ...), as "
        "Flux.2 and Qwen-Image Edit expect; off: all share index 1, placed side by side (Flux Kontext)",
    )
    loras: Mapping[str, float] = _setting(
        None, "LoRA file path, or name in Generator(lora_dir=...), -> weight; <lora:name:weight> in the prompt "
        "adds to these", factory=dict,
    )
    id_embedding: Optional[str] = _setting(
        None, "with id_images and a PhotoMaker v2 model: the pictures' InsightFace embeddings, the id_embeds.bin "
        "that PhotoMaker's face_detect.py writes for them", unset="",
    )
    style_strength: float = _setting(
        20.0, "with id_images: the percentage of the steps sampled from the prompt alone (the style) before "
        "the person's ID joins; 100 leaves the ID out", min=0, max=100,
    )
    hires: Optional[HiresFix] = _setting(
        None, "hires fix: sample again at a larger size; a HiresFix, a dict of its fields or True (its "
        "defaults); on the command line 'scale=2,steps=10,denoising_strength=0.5,upscaler=Lanczos'",
    )
    # Sampling extras: each one's default leaves the engine's behaviour as it is without it.
    preview_every: int = _setting(1, "with preview=: a preview at steps N, 2N, ... for N = preview_every", min=1)
    preview_mode: Union[PreviewMode, str] = _setting(
        PreviewMode.PROJ, "with preview=: proj (latent projection at 1/8 size, nearly free), tae (the Generator's "
        "TAESD), vae (the full decoder, as slow as the final decode)",
    )
    vae_tiling: Union[VaeTiling, bool, None] = _setting(
        None, "decode (and encode) in tiles to bound the VAE's memory: True or a VaeTiling; None: in one piece"
    )
    cache_mode: Union[CacheMode, str] = _setting(
        CacheMode.DISABLED, "step caching: reuse the diffusion model's output where it barely changes; ucache for "
        "UNet models (SD 1.x/2.x/XL), spectrum for UNet and DiT models, the others for DiT models",
    )
    cache_threshold: Optional[float] = _setting(
        None, "easycache/ucache reuse threshold, higher skips more steps; None: the engine's (0.2 easycache, 1.0 ucache)",
        min=0, unset=math.inf,
    )
    custom_sigmas: Optional[tuple[float, ...]] = _setting(
        None, "the steps + 1 noise levels to sample through, instead of the scheduler's (Generator.sigmas gives "
        "those)", unset=(),
    )
    eta: Optional[float] = _setting(
        None, "noise added per step by stochastic samplers (euler_a, dpm++2s_a, ddim_trailing, tcd, er_sde, res_*); "
        "None: the sampler's default; other samplers ignore it", min=0, unset=math.inf,
    )
    img_cfg_scale: Optional[float] = _setting(
        None, "image guidance scale of inpainting, instruct-pix2pix and Flux Fill/Control models; None: cfg_scale; "
        "refused for others",
        unset=math.inf,
    )
    slg: Union[SkipLayerGuidance, bool, None] = _setting(
        None, "skip-layer guidance (True or a SkipLayerGuidance) for DiT models; refused for UNet models, which "
        "the engine would run without it",
    )
    init_image: Optional[ImageInput] = _input(
        "image to image: start from this picture (PIL image in mode RGB/L/P, or a uint8 (height, width, 3) "
        "array) of exactly width x height"
    )
    mask_image: Optional[ImageInput] = _input(
        "inpainting: repaint where this mask (mode L/1, or (height, width) uint8) is white; needs init_image"
    )
    control_image: Optional[ImageInput] = _input(
        "the condition image (a depth or edge map ...) of the ControlNet, or of a Flux Control or Flex.2 model, "
        "width x height"
    )
    ref_images: Optional[Sequence[Union[ImageInput, str, os.PathLike]]] = _input(
        "reference images of any size (PIL images, uint8 (height, width, 3) arrays or image files) that the "
        "model sees beside the image it makes: Flux Kontext, Flux.2, Qwen-Image Edit, Z-Image; the image to edit "
        "of an instruct-pix2pix model (one); refused for other families"
    )
    id_images: Optional[Sequence[Union[ImageInput, str, os.PathLike]]] = _input(
        "PhotoMaker (needs Generator(photo_maker=...)): pictures of one person, any size (PIL images, uint8 "
        "(height, width, 3) arrays or image files), drawn where the prompt says '<class word> img', e.g. "
        "'a photo of a man img'"
    )
    progress: Optional[ProgressCallback] = _input(
        "called as progress(0, steps, 0.0) when sampling starts, then progress(step, steps, seconds_per_step) "
        "after each step, on the generating thread; an exception it raises is raised by generate()"
    )
    preview: Optional[PreviewCallback] = _input(
        "called as preview(step, image) with an RGB PIL image of the latent at every preview_every-th step, on the "
        "generating thread; an exception it raises is raised by generate(). Samplers that evaluate the model "
        "twice per step (heun, dpm2, ...) preview such a step twice"
    )

    def __post_init__(self) -> None:
        if isinstance(self.id_embedding, os.PathLike):
            object.__setattr__(self, "id_embedding", os.fspath(self.id_embedding))
        _check_fields(self)
        if self.mask_image is not None and self.init_image is None:
            raise InvalidArgumentError("mask_image: inpainting needs init_image as well")
        if self.width is None or self.height is None:
            self._size_from_inputs()
        for name in ("init_image", "mask_image", "control_image"):
            pixels = input_pixels(getattr(self, name), name, self.width, self.height, mask=name == "mask_image")
            object.__setattr__(self, name, pixels)
        object.__setattr__(self, "ref_images", reference_pixels(self.ref_images, "ref_images"))
        self._check_photomaker()
        for name in ("progress", "preview"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise InvalidArgumentError(f"{name}: must be callable or None, not {type(getattr(self, name)).__name__}")
        if self.custom_sigmas is not None and self.steps is None:
            object.__setattr__(self, "steps", len(self.custom_sigmas) - 1)  # the sigmas say how many
        if self.custom_sigmas is not None and len(self.custom_sigmas) != self.steps + 1:
            raise InvalidArgumentError(
                f"custom_sigmas: {len(self.custom_sigmas)} noise levels make {len(self.custom_sigmas) - 1} steps, "
                f"but steps is {self.steps}; pass steps={len(self.custom_sigmas) - 1}"
            )

    def _check_photomaker(self) -> None:
        object.__setattr__(self, "id_images", reference_pixels(self.id_images, "id_images"))
        if self.id_images is not None:
            check_trigger(self.prompt)
        if self.id_embedding is not None:
            if self.id_images is None:
                raise InvalidArgumentError("id_embedding: PhotoMaker v2's ID embeddings go with id_images; give both")
            check_id_embedding(self.id_embedding, len(self.id_images))

    def _size_from_inputs(self) -> None:
        """An unset width or height becomes that of the first input image: img2img keeps its size."""
        for name in ("init_image", "control_image"):
            image = getattr(self, name)
            if image is None:
                continue
            if isinstance(image, Image.Image):
                w, h = image.size
            elif isinstance(image, np.ndarray) and image.ndim >= 2:
                h, w = image.shape[:2]
            else:
                return  # input_pixels says what is wrong with it
            object.__setattr__(self, "width", self.width if self.width is not None else int(w))
            object.__setattr__(self, "height", self.height if self.height is not None else int(h))
            return

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (enums as their names): what images record."""
        return {f.name: _plain(getattr(self, f.name)) for f in settings()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GenerationParams:
        """The parameters from :meth:`to_dict`'s output; keys that are not settings are ignored."""
        return cls(**{f.name: values[f.name] for f in settings() if f.name in values})

    @classmethod
    def describe(cls) -> str:
        """Each field with its type, default and help, one per line."""
        return "\n".join(f"{f.name} ({_hints()[f.name]}, default {_default(f)!r}): {f.metadata['help']}"
                         for f in fields(cls))


def _check_fields(params: Any) -> None:
    """Check and store each field of ``params`` by its type, then run the fields' own checks."""
    own = fields(params)
    for f in own:
        object.__setattr__(params, f.name, check_field(f.name, getattr(params, f.name), type(params)))
    for f in own:
        if f.metadata.get("check"):
            f.metadata["check"](params, getattr(params, f.name))


def settings(cls: type = GenerationParams) -> tuple[Field, ...]:  # type: ignore[type-arg]
    """The fields of ``cls`` that are settings, in definition order."""
    return tuple(f for f in fields(cls) if f.metadata["role"] == _SETTING)


# Cached, as _fields_of and _hints: every GenerationParams made checks all its fields (several per generate()).
@functools.cache
def field_type(name: str, cls: type = GenerationParams) -> tuple[Any, bool]:
    """The type of field ``name`` of ``cls`` and whether it may be None."""
    return _unwrap_optional(_hints(cls)[name])


def check_field(name: str, value: Any, cls: type = GenerationParams) -> Any:
    """``value`` checked against the field ``name``'s type and bounds, as the field stores it."""
    f = _fields_of(cls)[name]
    hint, optional = field_type(name, cls)
    if value is None and optional:
        return None
    if f.metadata["role"] == _INPUT:
        return value  # checked as a whole in __post_init__
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        allowed = [m.value for m in hint]
        if value not in allowed:
            raise InvalidArgumentError(f"{name}: unknown {name} {value!r}; one of {', '.join(allowed)}")
        return hint(value)
    if typing.get_origin(hint) is collections.abc.Mapping:
        return _check_weights(name, value)
    if is_dataclass(hint):
        return _check_group(name, hint, value)
    if typing.get_origin(hint) is tuple:
        return _check_levels(name, value)
    if hint is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise InvalidArgumentError(f"{name}: must be True or False, not {value!r}")
        return bool(value)
    if hint is str:
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{name}: must be a str, not {type(value).__name__}")
        return value
    lo, hi = f.metadata["min"], f.metadata["max"]
    is_type = is_int(value) if hint is int else is_number(value) and math.isfinite(value)
    if not is_type or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidArgumentError(f"{name}: must be {_expected(hint, lo, hi, optional)}, not {value!r}")
    return int(value) if hint is int else float(value)


def _check_weights(name: str, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"{name}: must be a dict of name -> weight, not {type(value).__name__}")
    out = {}
    for key, weight in value.items():
        if not isinstance(key, (str, os.PathLike)) or not is_number(weight) or not math.isfinite(weight):
            raise InvalidArgumentError(f"{name}: {key!r}: {weight!r} is not a name or path -> finite weight")
        out[os.fspath(key)] = float(weight)
    return out


def _check_group(name: str, kind: type, value: Any) -> Any:
    """A group of settings: an instance, True (its defaults), False (none), or a dict of its fields."""
    if isinstance(value, kind):
        return value
    if value is True or value is False:
        return kind() if value else None
    if isinstance(value, Mapping):
        unknown = set(value) - {f.name for f in fields(kind)}
        if unknown:
            raise InvalidArgumentError(f"{name}: unknown field(s) {', '.join(sorted(unknown))} of {kind.__name__}")
        return kind(**value)
    raise InvalidArgumentError(f"{name}: must be a {kind.__name__}, True, False or None, not {value!r}")


def _check_levels(name: str, value: Any) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (collections.abc.Sequence, np.ndarray)):
        raise InvalidArgumentError(f"{name}: must be a sequence of noise levels, not {type(value).__name__}")
    levels = tuple(value)
    if len(levels) < 2 or not all(is_number(v) and math.isfinite(v) and v >= 0 for v in levels):
        raise InvalidArgumentError(f"{name}: must be at least 2 finite noise levels >= 0, not {value!r}")
    return tuple(float(v) for v in levels)


def to_core(params: Union[GenerationParams, VideoParams]) -> Any:
    """The engine's ``_core.GenerationParams`` (or ``_core.VideoParams``), filled from ``params`` field by
    field by name."""
    return _core_value(params) if isinstance(params, VideoParams) else _fill(_core.GenerationParams(), params, settings())


def _fill(core: Any, values: Any, own: tuple[Field, ...]) -> Any:  # type: ignore[type-arg]
    """``core`` with each field ``own`` of ``values`` set by name (None as the field's ``unset``)."""
    for f in own:
        value = getattr(values, f.name)
        setattr(core, f.name, f.metadata["unset"] if value is None else _core_value(value))
    return core


def _core_value(value: Any) -> Any:
    """``value`` as the engine's struct takes it: a group as its ``_core`` twin, filled by field name."""
    if not is_dataclass(value):
        return _plain(value)
    return _fill(getattr(_core, type(value).__name__)(), value, fields(value))


_R = TypeVar("_R")


def params_signature(
    source: Callable[_P, Any],
) -> Callable[[Callable[..., _R]], Callable[Concatenate[Any, _P], _R]]:
    """Give a method ``source``'s parameters for type checkers and IDEs (it is unchanged at runtime)."""
    return lambda method: method  # type: ignore[return-value]


def _expected(hint: type, lo: Optional[float], hi: Optional[float], optional: bool) -> str:
    kind = "an integer" if hint is int else "a number"
    if lo is not None and hi is not None:
        text = f"{kind} from {lo} to {hi}"
    elif lo == 1 and hint is int:
        text = "a positive integer"
    else:
        text = kind if hint is int else "a finite number"
    return text + (" or None" if optional else "")


def _plain(value: Any) -> Any:
    """JSON-ready: enums as their names, groups as dicts, tuples as lists."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, tuple):
        return list(value)
    return value.value if isinstance(value, enum.Enum) else value


def _default(f: Field) -> Any:  # type: ignore[type-arg]
    return "required" if f.default is MISSING else f.default


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """(type, may be None); an enum that may also be given by name (``Union[Sampler, str]``) is the enum,
    a group that may also be given as True (``Union[VaeTiling, bool]``) the group."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is not typing.Union:
        return hint, False
    rest = [a for a in args if a is not type(None)]
    named = [a for a in rest if isinstance(a, type) and (issubclass(a, enum.Enum) or is_dataclass(a))]
    kind = named[0] if named else rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]
    return kind, type(None) in args


@functools.cache  # resolved on first use: the annotations are strings until then
def _hints(cls: type = GenerationParams) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _fields_of(cls: type) -> dict[str, Field]:  # type: ignore[type-arg]
    return {f.name: f for f in fields(cls)}


def is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
