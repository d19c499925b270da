"""Checks on model files and folders, made before the engine opens them.

The engine trusts the files it reads: a header length beyond the end of the file or an offset out
of range can crash the process. Everything it relies on is checked here first, so a bad file is a
:class:`~sdcpp.ModelLoadError` that names the file and the problem. A file is told apart as the
engine tells it (``ModelLoader::init_from_file``): GGUF by its magic, then safetensors, a torch zip
checkpoint, or a legacy (non-zip) torch pickle; what the engine accepts passes here too.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import zipfile
from pathlib import Path

from ._legacy_checkpoint import legacy_checkpoint_problem

from .errors import ModelLoadError, ModelNotFoundError

__all__ = ["check_model_path", "check_model_file", "DIFFUSERS_PARTS"]

# Element sizes of the safetensors dtypes the engine reads (model_io/safetensors_io.cpp); it skips
# U8 tensors (such as some checkpoints' masks) without reading them.
_SAFETENSORS_ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "U8": 1,
}
# A real header (names, shapes, offsets) is at most a few MB; more is a corrupt length field.
_MAX_HEADER_BYTES = 100 * 2**20
_GGUF_VERSIONS = (2, 3)

# The files the engine reads from a diffusers folder (model.cpp, init_from_diffusers_file).
DIFFUSERS_PARTS = {
    "unet": "unet/diffusion_pytorch_model.safetensors",
    "vae": "vae/diffusion_pytorch_model.safetensors",
    "text_encoder": "text_encoder/model.safetensors",
}
_DIFFUSERS_OPTIONAL = {"text_encoder_2": "text_encoder_2/model.safetensors"}


def check_model_path(path: str | os.PathLike[str], argument: str) -> Path:
    """Validate a model file or diffusers folder; return it as an absolute path."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelNotFoundError(f"{argument}: no such file or folder: '{p}'")
    if p.is_dir():
        _check_diffusers_folder(p, argument)
    else:
        check_model_file(p, argument)
    return p.resolve()


def _check_diffusers_folder(folder: Path, argument: str) -> None:
    missing = [rel for rel in DIFFUSERS_PARTS.values() if not (folder / rel).is_file()]
    if missing:
        raise ModelLoadError(
            f"{argument}: '{folder}' is a folder but not a diffusers model: missing "
            + ", ".join(missing)
            + ". Pass a single .safetensors/.gguf/.ckpt file, or a folder with those files "
            "(fp16 'variant' files such as diffusion_pytorch_model.fp16.safetensors must be "
            "renamed without '.fp16')."
        )
    for rel in [*DIFFUSERS_PARTS.values(), *_DIFFUSERS_OPTIONAL.values()]:
        if (folder / rel).is_file():
            check_model_file(folder / rel, argument)


def check_model_file(path: Path, argument: str) -> None:
    """Validate one weights file by its content: safetensors, GGUF or a torch zip checkpoint."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            after_length = f.read(1)
    except OSError as e:
        raise ModelLoadError(f"{argument}: cannot read '{path}': {e.strerror}") from e
    if size == 0:
        raise ModelLoadError(f"{argument}: '{path}' is empty")
    if head[:4] == b"GGUF":
        _check_gguf(path, head, size, argument)
    elif zipfile.is_zipfile(path):
        _check_torch_zip(path, argument)
    elif head[:1] == pickle.PROTO and after_length != b"{":
        # A safetensors file starts with its header's length (little-endian, so 0x80 first for one
        # length in 256) and then the header's "{"; a pickle starts with PROTO and has no "{" opcode.
        _check_torch_legacy(path, size, argument)
    else:
        _check_safetensors(path, head, size, argument)


def _check_gguf(path: Path, head: bytes, size: int, argument: str) -> None:
    if size < 8:
        raise ModelLoadError(f"{argument}: '{path}' is a truncated GGUF file ({size} bytes)")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in _GGUF_VERSIONS:
        raise ModelLoadError(
            f"{argument}: '{path}' is GGUF version {version}; the engine reads versions "
            f"{', '.join(map(str, _GGUF_VERSIONS))}"
        )


def _check_torch_zip(path: Path, argument: str) -> None:
    # The engine reads the pickle's tensor references with its own parser: no code is executed.
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelLoadError(f"{argument}: '{path}' is a damaged zip checkpoint: {e}") from e
    if not any(n.endswith("data.pkl") for n in names):
        raise ModelLoadError(
            f"{argument}: '{path}' is a zip file but not a torch checkpoint (no data.pkl inside)"
        )


def _check_torch_legacy(path: Path, size: int, argument: str) -> None:
    with path.open("rb") as f:
        problem = legacy_checkpoint_problem(f, size)
    if problem:
        raise ModelLoadError(f"{argument}: '{path}' starts as a pickle, but {problem}")


def _check_safetensors(path: Path, head: bytes, size: int, argument: str) -> None:
    def bad(problem: str) -> ModelLoadError:
        return ModelLoadError(
            f"{argument}: '{path}' is not a valid safetensors, GGUF or checkpoint file: {problem}"
        )

    if len(head) < 8:
        raise bad(f"only {size} bytes long")
    (header_len,) = struct.unpack("<Q", head)
    if header_len < 2 or header_len > _MAX_HEADER_BYTES or 8 + header_len > size:
        raise bad(f"its header length field ({header_len}) does not fit a file of {size} bytes")
    with path.open("rb") as f:
        f.seek(8)
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"its header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")

    data_size = size - 8 - header_len
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise bad(f"tensor '{name}' has no dtype/shape/data_offsets entry")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _SAFETENSORS_ITEMSIZE:
            raise bad(
                f"tensor '{name}' has dtype {dtype!r}; supported: {', '.join(_SAFETENSORS_ITEMSIZE)}"
            )
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise bad(f"tensor '{name}' has shape {shape!r}, not a list of sizes")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise bad(f"tensor '{name}' has data_offsets {offsets!r} outside the {data_size}-byte data")
        expected = math.prod(shape) * _SAFETENSORS_ITEMSIZE[dtype]
        if offsets[1] - offsets[0] != expected:
            raise bad(
                f"tensor '{name}' ({dtype}, shape {shape}) needs {expected} bytes but its "
                f"data_offsets span {offsets[1] - offsets[0]}"
            )
        spans.append((offsets[0], offsets[1], name))
    if not spans:
        raise bad("it holds no tensors")
    spans.sort()
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise bad(f"tensors '{first}' and '{second}' overlap")
