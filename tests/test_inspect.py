"""sdcpp.inspect: family, components and types from headers alone, in agreement with the engine."""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp._core import _testing

from .models import write_safetensors

# --- header-only files -----------------------------------------------------------------------------------


def header_only(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    """A safetensors file with these f16 tensors and no data written: a sparse file of the full size,
    which only a reader of headers can use (the engine's detection and sdcpp.inspect are such readers)."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = 2 * math.prod(shape)
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        f.truncate(8 + len(blob) + offset)
    return path


D = "model.diffusion_model."
CLIP_L = {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 768)}
VAE = {"first_stage_model.decoder.conv_in.weight": (512, 4, 3, 3)}
UNET = {D + "input_blocks.0.0.weight": (320, 4, 3, 3), D + "middle_block.1.proj_in.weight": (320, 320, 1, 1)}
SDXL_G = {"conditioner.embedders.1.model.token_embedding.weight": (49408, 1280)}
XL_CLIP_L = {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (49408, 768)}
FLUX = {D + "double_blocks.0.img_attn.qkv.weight": (9216, 3072), D + "img_in.weight": (3072, 64)}

# Name sets that reach each of the engine's detection rules (get_sd_version), and the family each gives.
CASES = {
    "SD 1.x": {**UNET, **CLIP_L, **VAE},
    "SD 1.x Inpaint": {**UNET, D + "input_blocks.0.0.weight": (320, 9, 3, 3), **CLIP_L},
    "Instruct-Pix2Pix": {**UNET, D + "input_blocks.0.0.weight": (320, 8, 3, 3), **CLIP_L},
    "SD 1.x Tiny UNet": {D + "input_blocks.0.0.weight": (320, 4, 3, 3), D + "output_blocks.7.1.norm.weight": (640,), **CLIP_L},
    "SDXS (512-DS)": {D + "input_blocks.0.0.weight": (320, 4, 3, 3), **CLIP_L},
    "SD 2.x": {**UNET, "cond_stage_model.model.token_embedding.weight": (49408, 1024)},
    "SD 2.x Tiny UNet": {D + "input_blocks.0.0.weight": (320, 4, 3, 3), "cond_stage_model.model.token_embedding.weight": (49408, 1024)},
    "SDXL": {**UNET, **XL_CLIP_L, **SDXL_G},
    "SDXL Inpaint": {**UNET, D + "input_blocks.0.0.weight": (320, 9, 3, 3), **XL_CLIP_L, **SDXL_G},
    "SDXL (SSD1B)": {D + "input_blocks.0.0.weight": (320, 4, 3, 3), D + "output_blocks.3.1.transformer_blocks.1.norm1.weight": (1280,), **SDXL_G},
    "SDXL (Vega)": {D + "input_blocks.0.0.weight": (320, 4, 3, 3), **SDXL_G},
    "SVD": {**UNET, D + "input_blocks.8.0.time_mixer.mix_factor": (1,), **CLIP_L},
    "SD3.x": {D + "joint_blocks.0.x_block.attn.qkv.weight": (4608, 1536)},
    "Flux": FLUX,
    "Flux Fill": {**FLUX, D + "img_in.weight": (3072, 384)},
    "Flux Control": {**FLUX, D + "img_in.weight": (3072, 128)},
    "Flux.2": {D + "double_stream_modulation_img.lin.weight": (36864, 6144), D + "single_blocks.47.linear1.weight": (2, 64)},
    "Flux.2 klein": {D + "double_stream_modulation_img.lin.weight": (36864, 6144)},
    "Chroma Radiance": {D + "nerf_final_layer_conv.conv.weight": (3, 64, 3, 3)},
    "Qwen Image": {D + "transformer_blocks.0.img_mod.1.weight": (18432, 3072)},
    "Z-Image": {D + "cap_embedder.0.weight": (2560,)},
    "Ovis Image": {**FLUX, D + "double_blocks.0.img_mlp.gate_proj.weight": (64, 64)},
    "Ernie Image": {D + "layers.0.adaLN_sa_ln.weight": (64,)},
    "Anima": {D + "llm_adapter.blocks.0.cross_attn.q_proj.weight": (64, 64)},
    "Wan 2.x": {D + "blocks.0.cross_attn.norm_k.weight": (64,), D + "patch_embedding.weight": (5120, 16, 1, 2, 2)},
    "Wan 2.2 TI2V": {D + "blocks.0.cross_attn.norm_k.weight": (64,), D + "patch_embedding.weight": (3072, 48, 1, 2, 2)},
    "Wan 2.2 I2V": {D + "blocks.0.cross_attn.norm_k.weight": (64,), D + "patch_embedding.weight": (5120, 36, 1, 2, 2)},
    None: {"some.other.weight": (4, 4)},
}


@pytest.mark.parametrize("family", list(CASES), ids=lambda f: str(f))
def test_family_agrees_with_the_engines_detection(tmp_path: Path, family: str | None) -> None:
    path = header_only(tmp_path / "model.safetensors", CASES[family])
    assert _testing.detect_family([(str(path), "")]) == family  # the rule is reached as intended
    assert sdcpp.inspect(path).family == family


def _sdxl_folder(root: Path) -> Path:
    header_only(root / "unet/diffusion_pytorch_model.safetensors", {
        "conv_in.weight": (320, 4, 3, 3), "down_blocks.1.attentions.0.proj_in.weight": (640, 640),
        "mid_block.attentions.0.proj_in.weight": (1280, 1280), "mid_block.resnets.1.conv1.weight": (1280, 1280, 3, 3),
    })
    header_only(root / "vae/diffusion_pytorch_model.safetensors", {"decoder.conv_in.weight": (512, 4, 3, 3)})
    header_only(root / "text_encoder/model.safetensors", {"text_model.embeddings.token_embedding.weight": (49408, 768)})
    header_only(root / "text_encoder_2/model.safetensors", {"text_model.embeddings.token_embedding.weight": (49408, 1280)})
    return root


def test_sdxl_diffusers_folder_is_sdxl_for_the_engine_and_inspect(tmp_path: Path) -> None:
    """third_party/patches/0018: the engine read this folder as SD 1.x."""
    folder = _sdxl_folder(tmp_path / "sdxl")
    files = [("unet/diffusion_pytorch_model.safetensors", "unet."), ("vae/diffusion_pytorch_model.safetensors", "vae."),
             ("text_encoder/model.safetensors", "te."), ("text_encoder_2/model.safetensors", "te.1.")]
    assert _testing.detect_family([(str(folder / rel), prefix) for rel, prefix in files]) == "SDXL"
    assert _testing.detect_family([(str(folder), "")]) == "SDXL"
    info = sdcpp.inspect(folder)
    assert (info.format, info.family, info.missing) == ("diffusers", "SDXL", [])
    assert info.components == {"diffusion_model": 4, "vae": 1, "clip_l": 1, "clip_g": 1}


def test_family_agrees_with_the_generator_on_sd15_fixtures(generator: sdcpp.Generator, sd15_folder: Path) -> None:
    assert sdcpp.inspect(generator.model).family == generator.family == "SD 1.x"
    with sdcpp.Generator(sd15_folder, device="cpu") as gen:
        assert sdcpp.inspect(sd15_folder).family == gen.family == "SD 1.x"


def test_single_file_facts(sd15_file: Path) -> None:
    info = sdcpp.inspect(sd15_file)
    assert (info.format, info.family, info.missing) == ("safetensors", "SD 1.x", [])
    # 1131 tensors; the engine drops CLIP's position_ids (i64) when it reads the file.
    assert (info.tensor_count, info.dtypes) == (1131, {"f16": 1130, "i64": 1})
    assert info.components == {"diffusion_model": 686, "vae": 248, "clip_l": 196}
    assert info.file_size == sd15_file.stat().st_size
    assert info.parameters == 1066235384  # 859.5M UNet + 83.7M VAE + 123.1M CLIP-L + 77 position ids


def _bytes_read() -> int:
    return int(dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())["rchar"])


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts bytes through Linux's /proc/self/io")
def test_reads_headers_not_weights(sd15_file: Path, sd15_folder: Path) -> None:
    for model in (sd15_file, sd15_folder):
        before = _bytes_read()
        sdcpp.inspect(model)
        read = _bytes_read() - before
        assert read < 2_000_000, f"{model.name}: read {read} bytes of a 2.1 GB model"


def test_missing_components_name_the_argument(tmp_path: Path) -> None:
    unet = header_only(tmp_path / "unet.safetensors", {**UNET, **CLIP_L})
    assert sdcpp.inspect(unet).missing == ["vae"]
    flux = header_only(tmp_path / "flux.safetensors", {k[len(D):]: v for k, v in FLUX.items()})
    info = sdcpp.inspect(diffusion_model=flux)
    assert (info.missing, info.recommended) == (["vae", "clip_l"], ["t5xxl"])
    vae = header_only(tmp_path / "ae.safetensors", {"decoder.conv_in.weight": (512, 16, 3, 3)})
    clip_l = header_only(tmp_path / "clip_l.safetensors", {"text_model.embeddings.token_embedding.weight": (49408, 768)})
    t5 = header_only(tmp_path / "t5.safetensors", {"encoder.block.0.layer.0.SelfAttention.q.weight": (4096, 4096)})
    info = sdcpp.inspect(diffusion_model=flux, vae=vae, clip_l=clip_l, t5xxl=t5)
    assert (info.family, info.missing, info.recommended, len(info.files)) == ("Flux", [], [], 4)
    assert info.components == {"diffusion_model": 2, "vae": 1, "clip_l": 1, "t5xxl": 1}


# --- GGUF and torch checkpoints --------------------------------------------------------------------------

SMALL = {
    "model.diffusion_model.input_blocks.1.1.proj_in.weight": np.linspace(-1, 1, 320 * 256, dtype=np.float32).reshape(320, 256),
    "model.diffusion_model.input_blocks.1.1.proj_in.bias": np.zeros(320, np.float32),
    "model.diffusion_model.input_blocks.1.0.in_layers.2.weight": np.ones((320, 320, 3, 3), np.float16),
}


def test_gguf_header(tmp_path: Path) -> None:
    src = tmp_path / "small.safetensors"
    write_safetensors(src, SMALL)
    out = sdcpp.convert(src, tmp_path / "small.gguf", "q8_0")
    info = sdcpp.inspect(out)
    assert info.format == "gguf"
    shapes = {}
    for t in sdcpp._headers.read_header(out).tensors:
        shapes[t.name] = (t.dtype, t.shape)
    assert shapes == {
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": ("q8_0", (320, 256)),
        "model.diffusion_model.input_blocks.1.1.proj_in.bias": ("f32", (320,)),  # the engine keeps biases
        # A 3x3 kernel's rows are 3 wide, no whole block: patch 0032 writes it flattened, [OC, IC*KH*KW].
        "model.diffusion_model.input_blocks.1.0.in_layers.2.weight": ("q8_0", (320, 320 * 3 * 3)),
    }
    assert info.parameters == sum(a.size for a in SMALL.values())


def _gguf(path: Path, tensors: bytes = b"", n_tensors: int = 0, kv: bytes = b"", n_kv: int = 0) -> Path:
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + kv + tensors)
    return path


def _gguf_string(s: bytes, length: int | None = None) -> bytes:
    return struct.pack("<Q", len(s) if length is None else length) + s


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: _gguf(p, n_tensors=10**12), "tensor count"),
        (lambda p: _gguf(p, kv=_gguf_string(b"k", 2**60) + bytes(32), n_kv=1), "string length"),
        (lambda p: _gguf(p, kv=_gguf_string(b"key") + struct.pack("<I", 99) + bytes(32), n_kv=1), "unknown type 99"),
        (lambda p: _gguf(p, kv=_gguf_string(b"key") + struct.pack("<IIQ", 9, 4, 2**50) + bytes(32), n_kv=1), "array length"),
        (lambda p: _gguf(p, _gguf_string(b"w") + struct.pack("<IQIQ", 1, 64, 0, 0), 1), "past the end"),
        (lambda p: _gguf(p, _gguf_string(b"w") + struct.pack("<IQIQ", 1, 64, 77, 0), 1), "ggml type 77"),
        (lambda p: _gguf(p, _gguf_string(b"w") + struct.pack("<IQIQ", 1, 10, 8, 0) + bytes(64), 1), "not a multiple of 32"),
        (lambda p: _gguf(p, _gguf_string(b"w") + struct.pack("<I", 9) + bytes(32), 1), "9 dimensions"),
        (lambda p: _gguf(p, _gguf_string(b"w") + struct.pack("<I", 2) + bytes(4), 1), "truncated"),
        (lambda p: p.write_bytes(b"{}"), "only 2 bytes"),
        (lambda p: p.write_bytes(struct.pack("<Q", 2**40) + b"{}"), "header length field"),
        (lambda p: p.write_bytes(struct.pack("<Q", 5) + b"{nope"), "not JSON"),
        (lambda p: zipfile.ZipFile(p, "w").writestr("archive/data.pkl", b"\x80\x02garbage"), "pickle cannot be read"),
        (lambda p: p.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + b"garbage"), "pickle cannot be read"),
        (lambda p: p.write_bytes(pickle.dumps({"state_dict": {}}, protocol=2)), "starts as a pickle"),
    ],
)
def test_hostile_files_are_model_load_errors(tmp_path: Path, make, problem: str) -> None:
    path = tmp_path / "bad.bin"
    make(path)
    with pytest.raises(sdcpp.ModelLoadError, match=problem) as e:
        sdcpp.inspect(path)
    assert str(path) in str(e.value)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoint_pickle_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with zipfile.ZipFile(tmp_path / "evil.ckpt", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"state_dict": {"x": _Payload()}}, protocol=2))
    info = sdcpp.inspect(tmp_path / "evil.ckpt")
    assert (info.format, info.tensor_count) == ("torch zip", 0)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_checkpoints(tmp_path: Path, zip_format: bool) -> None:
    torch = pytest.importorskip("torch")
    state = {
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(49408, 768, dtype=torch.float16),
        "model.diffusion_model.input_blocks.0.0.weight": torch.nn.Parameter(torch.zeros(320, 4, 3, 3)),
        "model.diffusion_model.middle_block.1.proj_in.weight": torch.zeros(320, 320, 1, 1, dtype=torch.bfloat16),
        "global_step": 1000,
    }
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, path, _use_new_zipfile_serialization=zip_format)
    info = sdcpp.inspect(path)
    assert info.format == ("torch zip" if zip_format else "legacy torch pickle")
    assert (info.family, info.tensor_count, info.dtypes) == ("SD 1.x", 3, {"f16": 1, "f32": 1, "bf16": 1})
    assert info.parameters == 49408 * 768 + 320 * 36 + 320 * 320
    if zip_format:
        assert _testing.detect_family([(str(path), "")]) == "SD 1.x"


# --- command line ----------------------------------------------------------------------------------------


def test_command_line_prints_json(tmp_path: Path) -> None:
    path = header_only(tmp_path / "m.safetensors", CASES["SDXL"])
    out = subprocess.run([sys.executable, "-m", "sdcpp", "inspect", str(path)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["family"] == "SDXL"
    bad = subprocess.run([sys.executable, "-m", "sdcpp", "inspect", str(tmp_path / "nope")], capture_output=True, text=True)
    assert bad.returncode == 1 and "no such file" in bad.stderr
