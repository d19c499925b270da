"""Malformed model files and folders are refused before the engine opens them."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp.files import check_model_path

from .models import write_safetensors


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
