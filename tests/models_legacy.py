"""Legacy (non-zip) torch checkpoints, written with the standard library alone.

``torch.save(state_dict, path, _use_new_zipfile_serialization=False)`` (the default before
PyTorch 1.6, and the format of many early ``.ckpt`` files) writes five pickles (protocol 2): the
magic number, the format version 1001, system information, the state dict, whose tensors refer to
their storages by key, and the list of storage keys; then each storage as an 8-byte element count
and its bytes. The state dict names torch globals, so it is written opcode by opcode here.
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path
from typing import Mapping

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_STORAGES = {np.dtype("float32"): "FloatStorage", np.dtype("float16"): "HalfStorage", np.dtype("int64"): "LongStorage"}


def _text(s: str) -> bytes:
    data = s.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def _int(i: int) -> bytes:
    return pickle.BININT + struct.pack("<i", i)


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _ints(values: tuple[int, ...]) -> bytes:
    return pickle.MARK + b"".join(map(_int, values)) + pickle.TUPLE


def state_dict_pickle(tensors: Mapping[str, np.ndarray], keys: list[str]) -> bytes:
    """The state dict pickle: name -> torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, ...)."""
    out = pickle.PROTO + b"\x02" + pickle.EMPTY_DICT
    for key, (name, a) in zip(keys, tensors.items()):
        storage = (
            pickle.MARK + _text("storage") + _global("torch", _STORAGES[np.dtype(a.dtype)]) + _text(key)
            + _text("cpu") + _int(int(np.prod(a.shape))) + pickle.NONE + pickle.TUPLE + pickle.BINPERSID
        )
        strides = tuple(int(np.prod(a.shape[i + 1:])) for i in range(len(a.shape)))
        out += (
            _text(name) + _global("torch._utils", "_rebuild_tensor_v2") + pickle.MARK + storage + _int(0)
            + _ints(tuple(a.shape)) + _ints(strides) + pickle.NEWFALSE
            + _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
            + pickle.TUPLE + pickle.REDUCE + pickle.SETITEM
        )
    return out + pickle.STOP


def write_torch_legacy(path: Path, tensors: Mapping[str, np.ndarray]) -> Path:
    """Write ``tensors`` (float32, float16 or int64; lazily materialised) as a legacy checkpoint."""
    keys = [f"{i:08d}" for i in range(len(tensors))]  # the engine lays storages out in key order
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as f:
        for obj in (MAGIC_NUMBER, 1001, sys_info):
            f.write(pickle.dumps(obj, protocol=2))
        f.write(state_dict_pickle(tensors, keys))
        f.write(pickle.dumps(keys, protocol=2))
        for tensor in tensors.values():
            array = np.ascontiguousarray(tensor, dtype=np.dtype(tensor.dtype).newbyteorder("<"))
            f.write(struct.pack("<q", array.size))
            f.write(array.data)
    return path


def safetensors_to_torch_legacy(source: Path, dest: Path) -> Path:
    """The same tensors as a legacy checkpoint, read one at a time from the safetensors file."""
    with open(source, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    data = np.memmap(source, dtype=np.uint8, mode="r", offset=8 + length)
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    tensors = {
        name: data[info["data_offsets"][0]:info["data_offsets"][1]].view(dtypes[info["dtype"]]).reshape(info["shape"])
        for name, info in header.items()
    }
    return write_torch_legacy(dest, tensors)
