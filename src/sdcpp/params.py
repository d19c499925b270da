"""The parameters of one generation, defined once.

:class:`GenerationParams` is the single definition: each field carries its type, default, bounds and
help text. :meth:`Generator.generate` takes it (or its fields as keyword arguments), it validates
itself when made, fills the engine's bound struct ``_core.GenerationParams`` field by field
(:func:`to_core`), is what a generated image's metadata holds (:meth:`GenerationParams.to_dict`),
and the ``sdcpp generate`` command line's options are built from its fields.

Adding a setting is one field here and one line in cpp/params.h.
"""

from __future__ import annotations

import collections.abc
import enum
import math
import os
import typing
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, TypeVar, Union

import numpy as np
from PIL import Image

from . import _core
from .errors import InvalidArgumentError
from .images import ImageInput, input_pixels
from .names import Sampler, Scheduler

if TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    _P = ParamSpec("_P")

__all__ = ["GenerationParams", "ProgressCallback", "check_field", "check_seed", "to_core"]

#: ``progress(step, steps, seconds_per_step)``, called on the generating thread (step 0 at the start).
ProgressCallback = Callable[[int, int, float], object]

# The engine's prompt parsing and tokenizing slow down sharply past this (a 10k-character prompt
# took 2.5 s to encode, a 100k-character one did not finish in 5 minutes).
_MAX_PROMPT_CHARS = 10_000
SEED_LIMIT = 2**63  # the engine's seed is an int64_t, and image i of a batch uses seed + i

# A field is a setting (recorded in the image's metadata, passed to the engine's struct, a command
# line option) or an input (an image or a callback, handed to the engine call beside the struct).
_SETTING, _INPUT = "setting", "input"


def _setting(
    default: Any, help: str, *, min: Optional[float] = None, max: Optional[float] = None, unset: Any = None,
    check: Optional[Callable[[GenerationParams, Any], None]] = None, factory: Optional[Callable[[], Any]] = None,
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
        "default, ignored by other models", min=0, unset=math.inf,
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
    loras: Mapping[str, float] = _setting(
        None, "LoRA file path, or name in Generator(lora_dir=...), -> weight; <lora:name:weight> in the prompt "
        "adds to these", factory=dict,
    )
    init_image: Optional[ImageInput] = _input(
        "image to image: start from this picture (PIL image in mode RGB/L/P, or a uint8 (height, width, 3) "
        "array) of exactly width x height"
    )
    mask_image: Optional[ImageInput] = _input(
        "inpainting: repaint where this mask (mode L/1, or (height, width) uint8) is white; needs init_image"
    )
    control_image: Optional[ImageInput] = _input("the ControlNet's condition image, width x height")
    progress: Optional[ProgressCallback] = _input(
        "called as progress(0, steps, 0.0) when sampling starts, then progress(step, steps, seconds_per_step) "
        "after each step, on the generating thread; an exception it raises is raised by generate()"
    )

    def __post_init__(self) -> None:
        own = fields(self)
        for f in own:
            object.__setattr__(self, f.name, check_field(f.name, getattr(self, f.name)))
        for f in own:
            if f.metadata.get("check"):
                f.metadata["check"](self, getattr(self, f.name))
        if self.mask_image is not None and self.init_image is None:
            raise InvalidArgumentError("mask_image: inpainting needs init_image as well")
        if self.width is None or self.height is None:
            self._size_from_inputs()
        for name in ("init_image", "mask_image", "control_image"):
            pixels = input_pixels(getattr(self, name), name, self.width, self.height, mask=name == "mask_image")
            object.__setattr__(self, name, pixels)
        if self.progress is not None and not callable(self.progress):
            raise InvalidArgumentError(f"progress: must be callable or None, not {type(self.progress).__name__}")

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


def settings() -> tuple[Field, ...]:  # type: ignore[type-arg]
    """The fields that are settings, in definition order."""
    return tuple(f for f in fields(GenerationParams) if f.metadata["role"] == _SETTING)


def field_type(name: str) -> tuple[Any, bool]:
    """The type of field ``name`` and whether it may be None."""
    return _unwrap_optional(_hints()[name])


def check_field(name: str, value: Any) -> Any:
    """``value`` checked against the field ``name``'s type and bounds, as the field stores it."""
    f = _FIELDS[name]
    hint, optional = field_type(name)
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


def to_core(params: GenerationParams) -> Any:
    """The engine's ``_core.GenerationParams``, filled from ``params`` field by field by name."""
    core = _core.GenerationParams()
    for f in settings():
        value = getattr(params, f.name)
        setattr(core, f.name, f.metadata["unset"] if value is None else _plain(value))
    return core


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
    return value.value if isinstance(value, enum.Enum) else value


def _default(f: Field) -> Any:  # type: ignore[type-arg]
    return "required" if f.default is MISSING else f.default


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """(type, may be None); an enum that may also be given by name (``Union[Sampler, str]``) is the enum."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is not typing.Union:
        return hint, False
    rest = [a for a in args if a is not type(None)]
    enums = [a for a in rest if isinstance(a, type) and issubclass(a, enum.Enum)]
    kind = enums[0] if enums else rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]
    return kind, type(None) in args


_HINTS: dict[str, Any] = {}


def _hints() -> dict[str, Any]:
    if not _HINTS:  # resolved on first use: the annotations are strings until then
        _HINTS.update(typing.get_type_hints(GenerationParams))
    return _HINTS


_FIELDS = {f.name: f for f in fields(GenerationParams)}


def is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
