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
import dataclasses
import enum
import math
import os
import typing
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, TypeVar, Union

import numpy as np

from . import _core
from .errors import InvalidArgumentError
from .images import ImageInput, input_pixels
from .names import HiresUpscaler, Sampler, Scheduler

if TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    _P = ParamSpec("_P")

__all__ = ["GenerationParams", "HiresFix", "ProgressCallback", "check_field", "check_seed", "to_core"]

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


@dataclass(frozen=True)
class HiresFix:
    """Hires fix: after the first pass, enlarge its result and sample it again at the larger size.

    As AUTOMATIC1111's "Hires. fix": the first pass composes at the size the model was trained for,
    the second adds detail at the target size, repainting ``denoising_strength`` of the enlarged
    image. The target is ``width`` x ``height`` when given, else the first pass's size times
    ``scale``; it must be a multiple of ``Generator.size_multiple``. Used as
    ``generate(..., hires=HiresFix(scale=2))`` (or a dict of these fields, or ``"scale=2,steps=10"``).
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

    @classmethod
    def from_text(cls, text: str) -> HiresFix:
        """``"scale=2,steps=10,upscaler=Lanczos"``: the command line's form."""
        values: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, equals, value = item.partition("=")
            if not equals or key.strip() not in _fields_of(cls):
                raise InvalidArgumentError(
                    f"hires: {item!r} is not KEY=VALUE with KEY one of {', '.join(_fields_of(cls))}"
                )
            hint, _ = field_type(key.strip(), cls)
            try:
                values[key.strip()] = hint(value.strip()) if hint in (int, float) else value.strip()
            except ValueError:
                kind = "an integer" if hint is int else "a number"
                raise InvalidArgumentError(f"hires.{key.strip()}: must be {kind}, not {value.strip()!r}") from None
        return cls(**values)


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
    width: int = _setting(512, "image width in pixels, a multiple of Generator.size_multiple (64 for SD 1.x/2.x/XL)", min=1)
    height: int = _setting(512, "image height in pixels, a multiple of Generator.size_multiple", min=1)
    steps: int = _setting(20, "sampling steps", min=1, max=10_000)
    cfg_scale: float = _setting(7.0, "classifier-free guidance scale")
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
    hires: Optional[HiresFix] = _setting(
        None, "hires fix: sample again at a larger size; a HiresFix, a dict of its fields, or 'KEY=VALUE,...' "
        "such as 'scale=2,steps=10,denoising_strength=0.5,upscaler=Lanczos'",
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
        _check_fields(self)
        if self.mask_image is not None and self.init_image is None:
            raise InvalidArgumentError("mask_image: inpainting needs init_image as well")
        for name in ("init_image", "mask_image", "control_image"):
            pixels = input_pixels(getattr(self, name), name, self.width, self.height, mask=name == "mask_image")
            object.__setattr__(self, name, pixels)
        if self.progress is not None and not callable(self.progress):
            raise InvalidArgumentError(f"progress: must be callable or None, not {type(self.progress).__name__}")

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
    if dataclasses.is_dataclass(hint):
        return _check_group(name, hint, value)
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


def _check_group(name: str, cls: type, value: Any) -> Any:
    """A group of settings (a dataclass such as HiresFix) from itself, a dict of its fields, or its text form."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        return cls.from_text(value)  # type: ignore[attr-defined]
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"{name}: must be a {cls.__name__}, a dict of its fields or 'KEY=VALUE,...', not {type(value).__name__}"
        )
    unknown = [k for k in value if k not in _fields_of(cls)]
    if unknown:
        raise InvalidArgumentError(f"{name}: unknown field {unknown[0]!r}; fields: {', '.join(_fields_of(cls))}")
    return cls(**value)


def to_core(params: GenerationParams) -> Any:
    """The engine's ``_core.GenerationParams``, filled from ``params`` field by field by name."""
    return _fill(_core.GenerationParams(), params)


def _fill(core: Any, params: Any) -> Any:
    """``core`` (the bound struct of ``params``'s class) with each setting of ``params`` set by name."""
    for f in settings(type(params)):
        value = getattr(params, f.name)
        if value is None:
            value = f.metadata["unset"]
        elif dataclasses.is_dataclass(value):
            value = _fill(getattr(_core, type(value).__name__)(), value)
        setattr(core, f.name, _plain(value))
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
    """A JSON-ready value: an enum by its name, a group of settings as a dict of them."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in settings(type(value))}
    return value


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


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type = GenerationParams) -> dict[str, Any]:
    if cls not in _HINTS:  # resolved on first use: the annotations are strings until then
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _fields_of(cls: type) -> dict[str, Field]:  # type: ignore[type-arg]
    return {f.name: f for f in fields(cls)}


def is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
