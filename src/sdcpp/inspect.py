"""``sdcpp.inspect``: what a model file or folder holds, from its headers alone."""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Optional, Union

from . import _detect
from ._headers import Header, read_header
from .errors import InvalidArgumentError, ModelLoadError, ModelNotFoundError
from .files import DIFFUSERS_PARTS

__all__ = ["ModelInfo", "inspect"]

PathLike = Union[str, "os.PathLike[str]"]

# The files the engine reads from a diffusers folder and the prefix each file's names get
# (init_from_diffusers_file in the engine's src/model.cpp).
_DIFFUSERS_PREFIXES = {
    DIFFUSERS_PARTS["unet"]: "unet.",
    DIFFUSERS_PARTS["vae"]: "vae.",
    DIFFUSERS_PARTS["text_encoder"]: "te.",
    "text_encoder_2/model.safetensors": "te.1.",
}
# Separate component files, in the order the engine loads them, with their name prefixes; clip_l and
# clip_g depend on whether what came before is a UNet (new_sd_ctx in src/stable-diffusion.cpp).
_COMPONENT_PREFIXES = {
    "diffusion_model": "model.diffusion_model.",
    "clip_l": ("cond_stage_model.transformer.", "text_encoders.clip_l.transformer."),
    "clip_g": ("cond_stage_model.1.transformer.", "text_encoders.clip_g.transformer."),
    "t5xxl": "text_encoders.t5xxl.transformer.",
    "llm": "text_encoders.llm.",
    "vae": "vae.",
}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What :func:`inspect` found. ``to_dict()`` gives it as plain JSON-ready values."""

    #: The model file or folder (or the first component given).
    path: str
    #: "safetensors", "gguf", "torch zip", "legacy torch pickle" or "diffusers".
    format: str
    #: The family the engine would detect (``Generator.family``), or None where it would refuse the files.
    family: Optional[str]
    #: Tensors per component found, keyed by the Generator argument that supplies that component.
    components: dict[str, int]
    #: Components the family needs that the files lack, as Generator arguments (``"vae"``: pass ``vae=``).
    #: For a UNet without text encoders (``family`` None), those of the family its attention width says.
    missing: list[str]
    #: Components the engine runs without but whose absence degrades the images (Flux's and SD3's T5-XXL,
    #: SD3's clip_g): it feeds zeros in their place and logs a warning.
    recommended: list[str]
    tensor_count: int
    #: Tensor count per type (ggml's names: ``"f16"``, ``"q8_0"``, ...).
    dtypes: dict[str, int]
    parameters: int
    #: Bytes on disk, all files together.
    file_size: int
    #: Each file read and its format.
    files: dict[str, str]
    #: The safetensors ``__metadata__`` or the GGUF key-value pairs (long arrays summarised).
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def inspect(
    path: Optional[PathLike] = None,
    *,
    diffusion_model: Optional[PathLike] = None,
    vae: Optional[PathLike] = None,
    clip_l: Optional[PathLike] = None,
    clip_g: Optional[PathLike] = None,
    t5xxl: Optional[PathLike] = None,
    llm: Optional[PathLike] = None,
) -> ModelInfo:
    """Describe a model from the headers of its files, without reading the weights.

    Args:
        path: a single-file model (``.safetensors``, ``.gguf``, ``.ckpt``/``.pt``) or a diffusers folder.
        diffusion_model, vae, clip_l, clip_g, t5xxl, llm: separate component files, as given to
            :class:`~sdcpp.Generator`; the family is then detected from all of them together, as the
            engine does.

    Returns:
        A :class:`ModelInfo`. Its ``family`` is the engine's, found by the engine's own rules from tensor
        names and shapes; ``missing`` names the Generator arguments that would complete the set.

    Raises:
        sdcpp.ModelNotFoundError: a path does not exist.
        sdcpp.ModelLoadError: a file is truncated or malformed, or a folder is not a diffusers model.
    """
    parts = {"diffusion_model": diffusion_model, "clip_l": clip_l, "clip_g": clip_g, "t5xxl": t5xxl, "llm": llm, "vae": vae}
    return read_model(path, parts)[0]


def read_model(
    path: Optional[PathLike], parts: dict[str, Optional[PathLike]]
) -> tuple[ModelInfo, Optional[str], dict[str, tuple[int, ...]]]:
    """:func:`inspect`'s answer; the family whose components ``missing`` lists: ``family``, or for a
    UNet given without the text encoders its attention width needs, the family that width says; and the
    engine's tensor map (name as loaded -> ggml ne)."""
    if path is None and all(v is None for v in parts.values()):
        raise InvalidArgumentError("path: give a model file or folder (or component files)")
    raw: dict[str, tuple[int, ...]] = {}  # the engine's tensor map: name as loaded -> ggml ne
    headers: dict[Path, Header] = {}
    first = None
    fmt = ""
    if path is not None:
        first = _existing(path, "path")
        fmt = "diffusers" if first.is_dir() else ""
        for file, prefix in _model_files(first):
            headers[file] = _load(file, prefix, "path", raw)
        fmt = fmt or headers[first].format
    for argument, value in parts.items():
        if value is None:
            continue
        file = _existing(value, argument)
        first = first or file
        prefix = _COMPONENT_PREFIXES[argument]
        if isinstance(prefix, tuple):
            prefix = prefix[0] if _detect.is_unet(raw) else prefix[1]
        headers[file] = _load(file, prefix, argument, raw)
        fmt = fmt or headers[file].format
    version0 = _detect.detect(raw)  # the engine converts names for the family it finds first, then detects again
    converted = [_detect.convert_name(name, version0) for name in raw]
    family = _detect.detect(dict(zip(converted, raw.values())))
    components = dict(Counter(c for c in map(_detect.component_of, converted) if c))
    tensors = [t for h in headers.values() for t in h.tensors]
    dtypes: dict[str, int] = {}
    for t in tensors:
        dtypes[t.dtype] = dtypes.get(t.dtype, 0) + 1
    metadata = {k: v for h in headers.values() for k, v in h.metadata.items()}
    assert first is not None
    # A UNet's attention width names its family even where the text encoders given say another (an SDXL
    # UNet with only clip_l is detected as SD 1.x and then fails on the shapes): its components are needed.
    unet = _detect.unet_family(raw)
    needs = unet if unet and _detect.REQUIRED[unet] != _detect.REQUIRED.get(family or "") else family
    return ModelInfo(
        path=str(first),
        format=fmt,
        family=family,
        components=components,
        missing=[c for c in _detect.REQUIRED.get(needs or "", ()) if c not in components],
        recommended=[c for c in _detect.RECOMMENDED.get(needs or "", ()) if c not in components],
        tensor_count=len(tensors),
        dtypes=dict(sorted(dtypes.items(), key=lambda kv: -kv[1])),
        parameters=sum(math.prod(t.shape) for t in tensors),
        file_size=sum(f.stat().st_size for f in headers),
        files={str(f): h.format for f, h in headers.items()},
        metadata=metadata,
    ), needs, raw


def _existing(path: PathLike, argument: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelNotFoundError(f"{argument}: no such file or folder: '{p}'")
    return p.resolve()


def _model_files(path: Path) -> list[tuple[Path, str]]:
    if not path.is_dir():
        return [(path, "")]
    found = [(path / rel, prefix) for rel, prefix in _DIFFUSERS_PREFIXES.items() if (path / rel).is_file()]
    if not (path / DIFFUSERS_PARTS["unet"]).is_file():
        raise ModelLoadError(
            f"path: '{path}' is a folder but not a diffusers model the engine reads: no "
            f"{DIFFUSERS_PARTS['unet']} (fp16 'variant' files such as diffusion_pytorch_model.fp16.safetensors "
            "must be renamed without '.fp16')"
        )
    return found


def _load(file: Path, prefix: str, argument: str, raw: dict[str, tuple[int, ...]]) -> Header:
    """Read one file's header and add its tensors to ``raw`` as the engine's loader would."""
    header = read_header(file, argument)
    drops_unused = header.format in ("safetensors", "legacy torch pickle")
    for t in header.tensors:
        if drops_unused and _detect.is_unused(t.name):
            continue
        name = t.name if t.name.startswith(prefix) else prefix + t.name
        raw[name] = _engine_ne(t.shape)
    return header


def _engine_ne(shape: tuple[int, ...]) -> tuple[int, ...]:
    """ggml's ne (innermost first) as the engine's reader makes it: a 5-d tensor (a video model's
    Conv3d) has its two outermost sizes merged (model_io/safetensors_io.cpp)."""
    if len(shape) == 5:
        shape = (shape[0] * shape[1], *shape[2:])
    return tuple(reversed(shape))
