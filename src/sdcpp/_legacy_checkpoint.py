"""Checks on legacy (non-zip) torch checkpoints, the format of ``torch.save`` before PyTorch 1.6.

The engine reads them itself (model_io/torch_legacy_io.cpp, pickle_io.cpp): up to five pickles
(the magic number, the format version 1001, system information, the state dict, the list of
storage keys), then each storage as an 8-byte element count and its bytes, in the order of their
keys. The pickles are read here as the engine reads them, without running any of their code:
every global they name resolves to an inert stand-in.
"""

from __future__ import annotations

import math
import pickle
from typing import Any, BinaryIO, NamedTuple

__all__ = ["legacy_checkpoint_problem"]

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
FORMAT_VERSION = 1001
_STORAGE_HEADER_BYTES = 8
# The engine's limit on a tensor's dimensions (SD_MAX_DIMS).
_MAX_DIMS = 5
# Element sizes of the storage classes the engine maps to a tensor type.
_STORAGE_ITEMSIZE = {
    "FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2,
    "IntStorage": 4, "LongStorage": 8,
}


class _StorageType(NamedTuple):
    name: str


class _Storage(NamedTuple):
    key: str
    itemsize: int
    count: int


class _Tensor(NamedTuple):
    storage: _Storage
    offset: int
    shape: tuple
    stride: tuple


class _Opaque:
    """Any other object a checkpoint holds (training state, ...): the engine ignores them."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


def _rebuild_tensor(storage: object, offset: object, shape: object, stride: object, *rest: object) -> _Tensor:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor's storage is not a torch storage")
    return _Tensor(storage, offset, shape, stride)  # type: ignore[arg-type]


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        return _Opaque

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[4], int)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        if pid[1].name not in _STORAGE_ITEMSIZE:
            raise pickle.UnpicklingError(
                f"storage type torch.{pid[1].name} is not one the engine reads "
                f"({', '.join(_STORAGE_ITEMSIZE)})"
            )
        if pid[4] < 0:
            raise pickle.UnpicklingError(f"a storage of {pid[4]} elements")
        return _Storage(str(pid[2]), _STORAGE_ITEMSIZE[pid[1].name], pid[4])


class _Within:
    """A file that refuses reads past its end: a corrupt length field may ask for exabytes."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f, self._size = f, size

    def _check(self, n: int) -> None:
        if n > self._size - self._f.tell():
            raise EOFError("a length field points past the end of the file")

    def read(self, n: int = -1) -> bytes:
        if n >= 0:
            self._check(n)
        return self._f.read(n)

    def readinto(self, buffer: Any) -> int:
        self._check(len(memoryview(buffer)))
        return self._f.readinto(buffer)

    def readline(self) -> bytes:
        return self._f.readline(1 << 20)


# The engine looks for tensors in nested dicts by recursion; real checkpoints nest two deep
# ({"state_dict": {...}}), and a deeper file could exhaust the engine's stack.
_MAX_NESTING = 16


def _tensors(value: object, out: dict[str, _Tensor], depth: int = 0) -> None:
    """The tensors of a state dict, found as the engine finds them (nested dicts included)."""
    if not isinstance(value, dict):
        return
    if depth > _MAX_NESTING:
        raise ValueError(f"its dicts nest more than {_MAX_NESTING} deep")
    for key, item in value.items():
        if isinstance(key, str) and isinstance(item, _Tensor):
            out[key] = item
        elif isinstance(item, dict):
            _tensors(item, out, depth + 1)


def _tensor_problem(name: str, t: _Tensor) -> str | None:
    shape, stride = t.shape, t.stride
    if not (isinstance(shape, tuple) and len(shape) <= _MAX_DIMS
            and all(isinstance(d, int) and d >= 0 for d in shape)):
        return f"tensor '{name}' has shape {shape!r}, not up to {_MAX_DIMS} sizes"
    if not isinstance(t.offset, int) or t.offset < 0:
        return f"tensor '{name}' has storage offset {t.offset!r}"
    numel = math.prod(shape)
    contiguous = tuple(math.prod(shape[i + 1:]) for i in range(len(shape)))
    if numel and stride != contiguous:
        return f"tensor '{name}' is not contiguous (stride {stride!r}); the engine reads only contiguous tensors"
    if t.offset + numel > t.storage.count:
        return f"tensor '{name}' reaches past the end of its storage"
    return None


def legacy_checkpoint_problem(f: BinaryIO, size: int) -> str | None:
    """Why the engine cannot read the legacy checkpoint open as ``f`` (``size`` bytes), or None."""
    within = _Within(f, size)
    try:
        first = _Unpickler(within).load()
        if first == MAGIC_NUMBER:
            if _Unpickler(within).load() != FORMAT_VERSION:
                return f"a legacy torch checkpoint of a format version other than {FORMAT_VERSION}"
            _Unpickler(within).load()  # system information
            state = _Unpickler(within).load()
        else:
            state = first  # a bare state dict, which the engine also reads
        _Unpickler(within).load()  # the storage keys
        tensors: dict[str, _Tensor] = {}
        _tensors(state, tensors)
    except Exception as e:  # noqa: BLE001 - whatever a damaged pickle makes the reader raise
        return f"it is not a torch checkpoint the engine can read ({type(e).__name__}: {e})"
    if not tensors:
        return "its pickle holds no state dict of tensors"
    for name, tensor in tensors.items():
        problem = _tensor_problem(name, tensor)
        if problem:
            return problem
    storages = {t.storage.key: t.storage for t in tensors.values()}
    needed = sum(_STORAGE_HEADER_BYTES + s.count * s.itemsize for s in storages.values())
    if needed > size - f.tell():
        return f"its storages need {needed} bytes after the pickles but the file has {size - f.tell()}"
    return None
