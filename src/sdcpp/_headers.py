"""Tensor names, types and shapes read from the headers of weight files, never their data.

One reader per format the engine opens: safetensors, GGUF, torch zip checkpoints and legacy torch
pickles. Each returns :class:`Header`; a malformed file is a :class:`~sdcpp.ModelLoadError`.
"""

from __future__ import annotations

import json
import math
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from . import _core
from .errors import ModelLoadError
from .files import check_model_file

__all__ = ["Header", "Tensor", "read_header"]


class Tensor(NamedTuple):
    name: str
    dtype: str  #: ggml's type name: "f16", "q8_0", ...
    shape: tuple[int, ...]  #: outermost first, as torch and safetensors write it


class Header(NamedTuple):
    format: str  #: "safetensors", "gguf", "torch zip" or "legacy torch pickle"
    tensors: list[Tensor]
    metadata: dict[str, Any]


_SAFETENSORS_DTYPES = {
    "F64": "f64", "F32": "f32", "F16": "f16", "BF16": "bf16", "F8_E4M3": "f8_e4m3", "F8_E5M2": "f8_e5m2",
    "I64": "i64", "I32": "i32",
}
# torch's typed storage classes, as pickled by torch.save.
_TORCH_STORAGES = {
    "DoubleStorage": "f64", "FloatStorage": "f32", "HalfStorage": "f16", "BFloat16Storage": "bf16",
    "LongStorage": "i64", "IntStorage": "i32", "ShortStorage": "i16", "CharStorage": "i8",
    "ByteStorage": "u8", "BoolStorage": "bool",
}
# GGUF metadata arrays longer than this (a tokenizer's vocabulary) are summarised, not listed.
_MAX_LISTED = 16


def read_header(path: Path, argument: str = "path") -> Header:
    """The tensors of one weights file, validated first as the Generator validates it."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_TORCH_LEGACY_START))
        if head == _TORCH_LEGACY_START:
            return _read_legacy_torch(path)
        check_model_file(path, argument)
        if head[:4] == b"GGUF":
            return _read_gguf(path)
        if zipfile.is_zipfile(path):
            return _read_torch_zip(path)
        return _read_safetensors(path)
    except ModelLoadError as e:
        if str(e).startswith(f"{argument}: "):
            raise
        raise ModelLoadError(f"{argument}: '{path}': {e}") from None
    except OSError as e:
        raise ModelLoadError(f"{argument}: cannot read '{path}': {e}") from None


# --- safetensors --------------------------------------------------------------------------------------


def _read_safetensors(path: Path) -> Header:
    # check_model_file has validated the length field, the JSON and every entry.
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    metadata = header.pop("__metadata__", None) or {}
    tensors = [Tensor(name, _SAFETENSORS_DTYPES[info["dtype"]], tuple(info["shape"])) for name, info in header.items()]
    return Header("safetensors", tensors, dict(metadata))


# --- GGUF ---------------------------------------------------------------------------------------------

# Metadata value types of the GGUF format: struct code per scalar type; 8 is a string, 9 an array.
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_DEFAULT_ALIGNMENT = 32


class _Reader:
    """Little-endian reads that never ask for more than the file still holds."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.size = f, size

    def take(self, n: int) -> bytes:
        if n > self.size - self.f.tell():
            raise ModelLoadError(f"it is truncated: a field of {n} bytes at offset {self.f.tell()} passes its end")
        return self.f.read(n)

    def unpack(self, code: str) -> Any:
        return struct.unpack("<" + code, self.take(struct.calcsize(code)))[0]

    def count(self, what: str, least_bytes_each: int) -> int:
        n = self.unpack("Q")
        if n * least_bytes_each > self.size - self.f.tell():
            raise ModelLoadError(f"its {what} count ({n}) cannot fit in the file")
        return n

    def string(self) -> str:
        return self.take(self.count("string length", 1)).decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind == _GGUF_STRING:
            return self.string()
        if kind == _GGUF_ARRAY:
            item_kind = self.unpack("I")
            if item_kind != _GGUF_STRING and item_kind not in _GGUF_SCALARS:
                raise ModelLoadError(f"it has a metadata array of unknown type {item_kind}")
            least = 8 if item_kind == _GGUF_STRING else struct.calcsize(_GGUF_SCALARS[item_kind])
            n = self.count("array length", least)
            items = [self.value(item_kind) for _ in range(n)]
            return items if n <= _MAX_LISTED else f"[{n} items]"
        if kind not in _GGUF_SCALARS:
            raise ModelLoadError(f"it has a metadata value of unknown type {kind}")
        return self.unpack(_GGUF_SCALARS[kind])


def _ggml_types() -> dict[int, tuple[str, int, int]]:
    return {t: (name, block, size) for t, name, block, size in _core.ggml_types()}


def _read_gguf(path: Path) -> Header:
    types = _ggml_types()
    size = path.stat().st_size
    with path.open("rb") as f:
        r = _Reader(f, size)
        r.take(8)  # magic and version, checked by check_model_file
        n_tensors = r.count("tensor", 24)
        n_kv = r.count("metadata", 12)
        metadata = {}
        for _ in range(n_kv):
            key = r.string()
            metadata[key] = r.value(r.unpack("I"))
        infos = []
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.unpack("I")
            if n_dims > 4:
                raise ModelLoadError(f"tensor '{name}' has {n_dims} dimensions; ggml has at most 4")
            dims = [r.unpack("Q") for _ in range(n_dims)]
            infos.append((name, dims, r.unpack("I"), r.unpack("Q")))
        alignment = metadata.get("general.alignment", _GGUF_DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0:
            raise ModelLoadError(f"its general.alignment ({alignment!r}) is not a positive integer")
        data_start = -(-f.tell() // alignment) * alignment
    tensors = []
    for name, dims, type_id, offset in infos:
        if type_id not in types:
            raise ModelLoadError(f"tensor '{name}' has ggml type {type_id}, which this ggml does not know")
        type_name, block, type_size = types[type_id]
        if dims and dims[0] % block:
            raise ModelLoadError(f"tensor '{name}' ({type_name}) has rows of {dims[0]}, not a multiple of {block}")
        nbytes = math.prod(dims) // block * type_size
        if data_start + offset + nbytes > size:
            raise ModelLoadError(f"tensor '{name}' lies past the end of the file (offset {offset}, {nbytes} bytes)")
        tensors.append(Tensor(name, type_name, tuple(reversed(dims))))
    return Header("gguf", tensors, metadata)


# --- torch checkpoints --------------------------------------------------------------------------------


class _Storage(NamedTuple):
    dtype: str


class _TensorRef(NamedTuple):
    dtype: str
    shape: tuple[int, ...]


class _Opaque:
    """Stands for every global a checkpoint names besides tensors (training state, numpy scalars):
    nothing is imported or called, so nothing in the pickle runs."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def append(self, item: object) -> None:
        pass

    def extend(self, items: object) -> None:
        pass


class _Dict(dict):
    """OrderedDict as torch pickles it: items, then attributes (``_metadata``) that are dropped."""

    def __setstate__(self, state: object) -> None:
        pass


class _StorageType:
    def __init__(self, dtype: str) -> None:
        self.dtype = dtype


def _rebuild_tensor(storage: object, offset: object, size: object, *args: object) -> _TensorRef:
    if not isinstance(storage, _Storage) or not isinstance(size, (tuple, list)):
        raise pickle.UnpicklingError("a tensor without a storage or a size")
    return _TensorRef(storage.dtype, tuple(int(d) for d in size))


def _rebuild_parameter(data: object, *args: object) -> object:
    return data


class _TensorUnpickler(pickle.Unpickler):
    """Understands only torch's tensor rebuild calls and persistent storage ids; every other global is
    an inert :class:`_Opaque`, so a checkpoint's pickle cannot import or execute anything."""

    _CALLS = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("collections", "OrderedDict"): _Dict,
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._CALLS:
            return self._CALLS[module, name]
        if module == "torch" and name in _TORCH_STORAGES:
            return _StorageType(_TORCH_STORAGES[name])
        return _Opaque

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "storage":
            kind = pid[1]
            return _Storage(kind.dtype if isinstance(kind, _StorageType) else "unknown")
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.80}")


def _state_tensors(obj: Any) -> list[Tensor]:
    """The tensors of a checkpoint's object: its "state_dict" when it has one, else the object itself."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ModelLoadError("its pickle holds no dict of tensors")
    return [Tensor(str(k), v.dtype, v.shape) for k, v in obj.items() if isinstance(v, _TensorRef)]


def _unpickle(f: BinaryIO) -> Any:
    try:
        return _TensorUnpickler(f).load()
    except Exception as e:  # a damaged pickle fails in many ways, none of which may escape as a crash
        raise ModelLoadError(f"its pickle cannot be read ({type(e).__name__}: {e})") from None


def _read_torch_zip(path: Path) -> Header:
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("data.pkl"))
        with z.open(name) as f:
            obj = _unpickle(f)
    return Header("torch zip", _state_tensors(obj), {})


_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# torch.save's legacy format opens with its magic number pickled (protocol 2): no safetensors header length
# or GGUF file starts so.
_TORCH_LEGACY_START = pickle.dumps(_TORCH_LEGACY_MAGIC, protocol=2)[:-1]


def _read_legacy_torch(path: Path) -> Header:
    """A pre-1.6 torch.save file: pickles of magic number, protocol, system info, then the object
    (the tensors' data follows, unread)."""
    with path.open("rb") as f:
        _unpickle(f), _unpickle(f), _unpickle(f)  # magic number, protocol version, system info
        obj = _unpickle(f)
    return Header("legacy torch pickle", _state_tensors(obj), {})

