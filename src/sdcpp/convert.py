"""``sdcpp.convert``: write a model as GGUF in another weight type (the engine's converter)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

from . import _core
from ._logs import logger
from .errors import InvalidArgumentError, SdcppError
from .files import check_model_path

__all__ = ["FileExistsSdcppError", "convert"]

PathLike = Union[str, "os.PathLike[str]"]
#: ``progress(tensors_done, tensors, seconds_per_tensor)``, called on the converting thread.
ConvertProgress = Callable[[int, int, float], object]


class FileExistsSdcppError(SdcppError, FileExistsError):
    """The output file of :func:`convert` exists and ``overwrite=True`` was not given."""


def convert(
    src: PathLike,
    dst: PathLike,
    weight_type: str = "q8_0",
    rules: Union[None, str, Mapping[str, str]] = None,
    overwrite: bool = False,
    progress: Optional[ConvertProgress] = None,
    *,
    vae: Optional[PathLike] = None,
    quantize_kernels: bool = True,
) -> Path:
    """Write the model at ``src`` to ``dst`` with its weights in ``weight_type``.

    ``dst`` is a GGUF file (or safetensors when it ends in ``.safetensors``, for float types). The
    engine keeps some tensors as they are whatever the type: biases, norms' scales, embeddings, the
    UNet's time and label embeddings, and every tensor whose rows do not divide into the type's blocks.
    A convolution kernel's rows (3 or 1 wide) never do; with ``quantize_kernels`` (the default) a
    kernel is quantized stored flattened to ``[OC, IC*KH*KW]``, a layout that sdcpp's engine reads
    (patch 0032) and other stable-diffusion.cpp builds do not: pass ``quantize_kernels=False`` for a
    file to share with them (larger: SD1.5 q8_0 1.80 GB instead of 1.17 GB; docs/inspect-convert.md).

    Args:
        src: a single-file model or a diffusers folder (tensor names are kept as the source has them).
        dst: the file to write.
        weight_type: a ggml type: ``"f16"``, ``"q8_0"``, ``"q5_K"``, ... (``sdcpp.names``).
        rules: per-tensor types that override ``weight_type``: the engine's rule string
            (``"attn=q8_0,ff=q4_K"``: the first regular expression found in a tensor's name wins) or a
            dict ``{regex: type}`` in the same order.
        overwrite: replace ``dst`` when it exists.
        progress: called as tensors are written.
        vae: a separate VAE file to include.
        quantize_kernels: quantize convolution kernels too (flattened); False keeps them as they
            are, in their 4-d layout.

    Returns:
        ``dst`` as an absolute path.

    Raises:
        sdcpp.InvalidArgumentError: an unknown weight type (the message lists the valid ones) or rule.
        FileExistsSdcppError: ``dst`` exists and ``overwrite`` is false.
        sdcpp.ModelNotFoundError, sdcpp.ModelLoadError: ``src`` is missing or malformed, or the engine failed.
    """
    types = _core.weight_types()
    _check_type(weight_type, "weight_type", types)
    rule_text = _rule_string(rules, types)
    source = check_model_path(src, "src")
    vae_path = str(check_model_path(vae, "vae")) if vae is not None else ""
    out = Path(dst).expanduser().resolve()
    if out.exists() and not overwrite:
        raise FileExistsSdcppError(f"dst: '{out}' exists; pass overwrite=True to replace it")
    if not out.parent.is_dir():
        raise InvalidArgumentError(f"dst: the folder '{out.parent}' does not exist")
    if out == source:
        raise InvalidArgumentError("dst: is the source itself; write to another file")
    # The engine writes in place: a failed conversion must not leave half a file where dst was.
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")  # the engine picks the format by the suffix
    try:
        try:
            _core.convert(str(source), vae_path, str(partial), weight_type, rule_text, quantize_kernels, progress,
                          logger.getChild("convert"))
        except ValueError as e:  # a rule's pattern the engine's std::regex refuses
            raise InvalidArgumentError(f"rules: {e}") from None
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out


def _check_type(name: object, argument: str, types: list[str]) -> None:
    if name not in types:
        raise InvalidArgumentError(f"{argument}: unknown weight type {name!r}; one of {', '.join(types)}")


def _rule_string(rules: Union[None, str, Mapping[str, str]], types: list[str]) -> str:
    """The engine's ``regex=type,...`` string; every type checked here, since the engine skips a bad
    rule with only a warning."""
    if rules is None:
        return ""
    if isinstance(rules, str):
        pairs = [item.partition("=") for item in rules.split(",") if item]
        if any(not sep for _, sep, _ in pairs):
            raise InvalidArgumentError(f"rules: {rules!r} is not 'regex=type,regex=type,...'")
        items = [(pattern, kind) for pattern, _, kind in pairs]
    elif isinstance(rules, Mapping):
        items = list(rules.items())
    else:
        raise InvalidArgumentError(f"rules: a 'regex=type,...' string or a dict, not {type(rules).__name__}")
    for pattern, kind in items:
        if not isinstance(pattern, str) or "," in pattern or "=" in pattern:
            raise InvalidArgumentError(f"rules: pattern {pattern!r} cannot contain ',' or '=' (the engine splits on them)")
        _check_type(kind, f"rules[{pattern!r}]", types)
    return ",".join(f"{pattern}={kind}" for pattern, kind in items)
