"""Random-weight PhotoMaker ID encoders in the layout the engine reads (src/pmid.hpp), and v2's ID embeddings.

The engine reads a PhotoMaker file's tensors under ``pmid.`` (it adds the prefix where a name lacks
it) by the names of its own blocks, converting only ``vision_model.visual_projection`` and v2's
``nn.Sequential`` indices (``token_proj.0``, ``layers.N.1.1``, ...; src/name_conversion.cpp):

- v1 (``PhotoMakerIDEncoder``): the CLIP ViT-L/14 vision tower (``vision_model.*``, 24 layers of
  1024, fixed by the engine), ``visual_projection`` (1024 -> 768) and ``visual_projection_2``
  (1024 -> 1280), whose outputs together are the 2048-wide ID embedding, and ``fuse_module`` (two
  MLPs that merge it into the class word's 2048-wide SDXL text embedding). 320 M parameters.
- v2 (``PhotoMakerIDEncoder_CLIPInsightfaceExtendtokenBlock``): the same tower and fuse module, plus
  ``qformer_perceiver``, which turns InsightFace's 512-wide face embedding of each picture into two
  tokens. 530 M parameters. The engine takes a file for v2 when its *path* contains "v2".

Weights are float16 with the seeded values of models.RandomTensor (fan-in scaled, norms near 1),
so activations stay finite through the 24 layers. ``write_id_embeddings`` writes v2's ID
embeddings as the engine reads them (``load_tensor_from_file_as_tensor``: int32 dims, name length and
ggml type, the dims innermost first, the name, float32 values), the format of PhotoMaker's
``face_detect.py``.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from . import models
from .models import RandomTensor, write_safetensors

_WIDTH, _MLP, _LAYERS, _PATCH, _POSITIONS = 1024, 4096, 24, 14, 257  # CLIP ViT-L/14 at 224 pixels
_FUSE = 2048  # the SDXL text embedding's width (768 + 1280)
_FACE = 512  # InsightFace's embedding
_QFORMER_DEPTH, _FF_MULT = 4, 4


def _linear(out: dict, name: str, n_out: int, n_in: int, bias: bool, seed: int) -> None:
    out[f"{name}.weight"] = RandomTensor(name + ".weight", (n_out, n_in), np.float16, "weight", seed)
    if bias:
        out[f"{name}.bias"] = RandomTensor(name + ".bias", (n_out,), np.float16, "bias", seed)


def _norm(out: dict, name: str, width: int, seed: int) -> None:
    out[f"{name}.weight"] = RandomTensor(name + ".weight", (width,), np.float16, "norm", seed)
    out[f"{name}.bias"] = RandomTensor(name + ".bias", (width,), np.float16, "bias", seed)


def _vision_tower(out: dict, seed: int) -> None:
    e = "pmid.vision_model.embeddings"
    out[f"{e}.class_embedding"] = RandomTensor(f"{e}.class_embedding", (_WIDTH,), np.float16, "embedding", seed)
    out[f"{e}.patch_embedding.weight"] = RandomTensor(
        f"{e}.patch_embedding.weight", (_WIDTH, 3, _PATCH, _PATCH), np.float16, "weight", seed)
    out[f"{e}.position_embedding.weight"] = RandomTensor(
        f"{e}.position_embedding.weight", (_POSITIONS, _WIDTH), np.float16, "embedding", seed)
    _norm(out, "pmid.vision_model.pre_layernorm", _WIDTH, seed)
    for i in range(_LAYERS):
        layer = f"pmid.vision_model.encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            _linear(out, f"{layer}.self_attn.{proj}", _WIDTH, _WIDTH, True, seed)
        _norm(out, f"{layer}.layer_norm1", _WIDTH, seed)
        _norm(out, f"{layer}.layer_norm2", _WIDTH, seed)
        _linear(out, f"{layer}.mlp.fc1", _MLP, _WIDTH, True, seed)
        _linear(out, f"{layer}.mlp.fc2", _WIDTH, _MLP, True, seed)
    _norm(out, "pmid.vision_model.post_layernorm", _WIDTH, seed)
    _linear(out, "pmid.visual_projection", 768, _WIDTH, False, seed)
    _linear(out, "pmid.visual_projection_2", 1280, _WIDTH, False, seed)


def _fuse_module(out: dict, seed: int) -> None:
    f = "pmid.fuse_module"
    for mlp, width in (("mlp1", 2 * _FUSE), ("mlp2", _FUSE)):
        _linear(out, f"{f}.{mlp}.fc1", _FUSE, width, True, seed)
        _linear(out, f"{f}.{mlp}.fc2", _FUSE, _FUSE, True, seed)
        _norm(out, f"{f}.{mlp}.layernorm", width, seed)
    _norm(out, f"{f}.layer_norm", _FUSE, seed)


def _qformer_perceiver(out: dict, seed: int) -> None:
    q = "pmid.qformer_perceiver"
    _linear(out, f"{q}.token_proj.0", _FACE * 4, _FACE, True, seed)
    _linear(out, f"{q}.token_proj.2", _FUSE * 2, _FACE * 4, True, seed)  # 2 tokens of 2048
    _norm(out, f"{q}.token_norm", _FUSE, seed)
    r = f"{q}.perceiver_resampler"
    _linear(out, f"{r}.proj_in", _FUSE, _WIDTH, True, seed)
    _linear(out, f"{r}.proj_out", _FUSE, _FUSE, True, seed)
    _norm(out, f"{r}.norm_out", _FUSE, seed)
    for i in range(_QFORMER_DEPTH):
        attn, ff = f"{r}.layers.{i}.0", f"{r}.layers.{i}.1"
        _norm(out, f"{attn}.norm1", _FUSE, seed)
        _norm(out, f"{attn}.norm2", _FUSE, seed)
        _linear(out, f"{attn}.to_q", _FUSE, _FUSE, False, seed)
        _linear(out, f"{attn}.to_kv", 2 * _FUSE, _FUSE, False, seed)
        _linear(out, f"{attn}.to_out", _FUSE, _FUSE, False, seed)
        _norm(out, f"{ff}.0", _FUSE, seed)
        _linear(out, f"{ff}.1", _FUSE * _FF_MULT, _FUSE, False, seed)  # nn.Sequential: 1 and 3 are the Linears
        _linear(out, f"{ff}.3", _FUSE, _FUSE * _FF_MULT, False, seed)


def photomaker_tensors(version: int = 1, *, seed: int = 0) -> dict[str, RandomTensor]:
    """The tensors of a PhotoMaker v1 or v2 file, by the names the engine reads."""
    out: dict[str, RandomTensor] = {}
    _vision_tower(out, seed)
    _fuse_module(out, seed)
    if version == 2:
        _qformer_perceiver(out, seed)
    return out


def write_photomaker(path, *, version: int = 1, seed: int = 0) -> Path:
    write_safetensors(path, photomaker_tensors(version, seed=seed))
    return Path(path)


def write_id_embeddings(path, embeddings: np.ndarray, *, name: str = "id_embeds") -> Path:
    """``embeddings`` (pictures x 512 float32) as the engine's tensor file (innermost dimension first)."""
    values = np.ascontiguousarray(embeddings, dtype="<f4")
    dims = values.shape[::-1]
    encoded = name.encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<3i", len(dims), len(encoded), 0))  # ggml type 0: F32
        f.write(struct.pack(f"<{len(dims)}i", *dims))
        f.write(encoded)
        f.write(values.tobytes())
    return Path(path)


def _built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, version: int) -> Path:
    from .conftest import _cache_dir, built

    folder = _cache_dir(tmp_path_factory, models, sys.modules[__name__])
    # "v2" in the name: the engine picks PhotoMaker's version by the path.
    return built(request, folder / f"photomaker-v{version}.safetensors",
                 lambda path: write_photomaker(path, version=version))


@pytest.fixture(scope="session")
def photomaker_v1(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PhotoMaker v1 file (640 MB), built once."""
    return _built(request, tmp_path_factory, 1)


@pytest.fixture(scope="session")
def photomaker_v2(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PhotoMaker v2 file (1.06 GB), built once."""
    return _built(request, tmp_path_factory, 2)
