"""Malformed model files and folders are refused before the engine opens them."""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp.files import check_model_path

from . import models, models_legacy
from .conftest import _cache_dir, built
from .models import write_safetensors
from .models_legacy import MAGIC_NUMBER, state_dict_pickle, write_torch_legacy


def _raw_safetensors(path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    body = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(body) if length is None else length) + body + data)
    return path


def test_missing_path_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model: no such file"):
        sdcpp.Generator(tmp_path / "nope.safetensors")
    with pytest.raises(sdcpp.ModelNotFoundError, match="diffusion_model: no such file"):
        sdcpp.Generator(diffusion_model=tmp_path / "unet.safetensors")


def test_folder_without_diffusers_parts_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "unet").mkdir()
    write_safetensors(tmp_path / "unet/diffusion_pytorch_model.safetensors", {"x": np.zeros(2, np.float16)})
    with pytest.raises(sdcpp.ModelLoadError) as e:
        sdcpp.Generator(tmp_path)
    assert "vae/diffusion_pytorch_model.safetensors" in str(e.value)
    assert "text_encoder/model.safetensors" in str(e.value)
    assert "unet/" not in str(e.value).split("missing")[1]


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(b"\x01\x02\x03"), "only 3 bytes"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), "header length field"),
        (lambda p: _raw_safetensors(p, {}, length=10**6), "header length field"),
        (lambda p: _raw_safetensors(p, b"{not json"), "not JSON"),
        (lambda p: _raw_safetensors(p, [1, 2]), "not a JSON object"),
        (lambda p: _raw_safetensors(p, {"__metadata__": {}}), "no tensors"),
        (
            lambda p: _raw_safetensors(p, {"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 4),
            "outside the 4-byte data",
        ),
        (
            lambda p: _raw_safetensors(p, {"w": {"dtype": "Q9", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8),
            "dtype 'Q9'",
        ),
        (
            lambda p: _raw_safetensors(p, {"w": {"dtype": "F16", "shape": [5], "data_offsets": [0, 8]}}, b"\0" * 8),
            "needs 10 bytes",
        ),
        (
            lambda p: _raw_safetensors(p, {"w": {"dtype": "F16", "shape": [-4], "data_offsets": [0, 8]}}, b"\0" * 8),
            "not a list of sizes",
        ),
        (
            lambda p: _raw_safetensors(
                p,
                {
                    "a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]},
                    "b": {"dtype": "F16", "shape": [4], "data_offsets": [4, 12]},
                },
                b"\0" * 12,
            ),
            "overlap",
        ),
        (lambda p: p.write_bytes(b"GGUF" + struct.pack("<I", 99) + b"\0" * 64), "GGUF version 99"),
        (lambda p: zipfile.ZipFile(p, "w").close() or None, "no data.pkl"),
    ],
    ids=[
        "empty", "tiny", "random-bytes", "header-longer-than-file", "bad-json", "json-not-object",
        "no-tensors", "offsets-out-of-range", "unknown-dtype", "size-mismatch", "negative-shape",
        "overlap", "gguf-version", "zip-not-checkpoint",
    ],
)
def test_malformed_file_is_refused_with_its_problem(tmp_path: Path, make, problem: str) -> None:
    path = tmp_path / "model.safetensors"
    make(path)
    with pytest.raises(sdcpp.ModelLoadError, match=problem):
        sdcpp.Generator(path)


def test_valid_safetensors_passes_the_checks(tmp_path: Path) -> None:
    path = tmp_path / "ok.safetensors"
    write_safetensors(path, {"a": np.ones((2, 3), np.float32), "b": np.zeros(5, np.float16)})
    assert check_model_path(path, "model") == path.resolve()


def test_a_u8_tensor_which_the_engine_skips_passes_the_checks(tmp_path: Path) -> None:
    path = _raw_safetensors(
        tmp_path / "mask.safetensors",
        {"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
         "mask": {"dtype": "U8", "shape": [3], "data_offsets": [4, 7]}},
        b"\0" * 7,
    )
    assert check_model_path(path, "model") == path.resolve()


TENSORS = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "b.bias": np.ones(4, np.float16)}


def test_the_legacy_checkpoint_writer_writes_what_torch_reads(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = write_torch_legacy(tmp_path / "old.ckpt", TENSORS)
    loaded = torch.load(path, weights_only=True)
    assert {k: v.numpy().tolist() for k, v in loaded.items()} == {k: v.tolist() for k, v in TENSORS.items()}


def test_a_legacy_torch_checkpoint_passes_the_checks(tmp_path: Path) -> None:
    path = write_torch_legacy(tmp_path / "old.ckpt", TENSORS)
    assert check_model_path(path, "model") == path.resolve()
    bare = tmp_path / "bare.ckpt"  # a state dict without the legacy header, which the engine reads too
    bare.write_bytes(b"".join(path.read_bytes().partition(state_dict_pickle(TENSORS, ["00000000", "00000001"]))[1:]))
    assert check_model_path(bare, "model") == bare.resolve()


def _legacy(tensors: dict, storages: bytes | None = None) -> bytes:
    keys = [f"{i:08d}" for i in range(len(tensors))]
    data = b"".join(struct.pack("<q", a.size) + a.tobytes() for a in tensors.values()) if storages is None else storages
    head = b"".join(pickle.dumps(o, protocol=2) for o in (MAGIC_NUMBER, 1001, {}))
    return head + state_dict_pickle(tensors, keys) + pickle.dumps(keys, protocol=2) + data


@pytest.mark.parametrize(
    "data, problem",
    [
        (_legacy(TENSORS, storages=b"\0" * 20), "its storages need 48 bytes after the pickles but the file has 20"),
        (_legacy(TENSORS)[:100], "not a torch checkpoint the engine can read"),
        (_legacy({}), "holds no state dict of tensors"),
        (pickle.dumps(MAGIC_NUMBER, protocol=2) + pickle.dumps(7, protocol=2), "format version other than 1001"),
        (_legacy({"x": np.zeros((2, 3), np.float32)}).replace(  # shape (-2, 3)
            b"J\x02\x00\x00\x00J\x03\x00\x00\x00", b"J\xfe\xff\xff\xffJ\x03\x00\x00\x00", 1), "shape"),
        (_legacy({"x": np.zeros((2, 3), np.float32)}).replace(  # stride (1, 2): a transposed view
            b"J\x03\x00\x00\x00J\x01\x00\x00\x00", b"J\x01\x00\x00\x00J\x02\x00\x00\x00", 1), "not contiguous"),
        (_legacy({"x": np.zeros(2, np.float32)}).replace(b"FloatStorage", b"ShortStorage"),
         "torch.ShortStorage is not one the engine reads"),
        (b"\x80\x02}q\x00" + b"(" * 100, "not a torch checkpoint the engine can read"),
    ],
    ids=["storages-truncated", "pickle-truncated", "no-tensors", "other-version", "negative-size",
         "not-contiguous", "unknown-storage", "unterminated"],
)
def test_a_damaged_legacy_checkpoint_is_refused_with_its_problem(tmp_path: Path, data: bytes, problem: str) -> None:
    path = tmp_path / "old.ckpt"
    path.write_bytes(data)
    with pytest.raises(sdcpp.ModelLoadError, match="starts as a pickle, but .*" + problem.replace(".", r"\.")):
        check_model_path(path, "model")


@pytest.fixture(scope="session")
def sd15_legacy_file(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sd15_file: Path
) -> Path:
    folder = _cache_dir(tmp_path_factory, models, models_legacy)
    return built(request, folder / "sd15-legacy.ckpt",
                 lambda p: models_legacy.safetensors_to_torch_legacy(sd15_file, p))


def test_the_engine_reads_a_legacy_checkpoint_as_it_reads_the_same_safetensors(
    sd15_legacy_file: Path, generator: sdcpp.Generator
) -> None:
    with sdcpp.Generator(sd15_legacy_file, device=generator.device) as old:
        assert old.family == generator.family == "SD 1.x"
        image = np.asarray(old.generate("x", seed=5, width=64, height=64, steps=2)[0])
    np.testing.assert_array_equal(image, np.asarray(generator.generate("x", seed=5, width=64, height=64, steps=2)[0]))
