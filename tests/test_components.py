"""What the Generator's loading options do: a ControlNet, a TAESD, separate component files,
weight_type and keep_clip_on_cpu / keep_vae_on_cpu, each checked by its effect on the images."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sdcpp
from sdcpp import _core
from sdcpp._core import _testing
from sdcpp.components import COMPONENTS

from .conftest import needs_reference
from .models_extra import COMPONENT_FILES
from .test_inspect import header_only

SMALL = dict(width=64, height=64, steps=2)


def pixels(images: list) -> np.ndarray:
    return np.asarray(images[0], dtype=np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12)))


def engine_lines(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("sdcpp"))


# --- ControlNet ---------------------------------------------------------------------------------------


def test_controlnet_steers_the_image_by_its_control_image(
    generator: sdcpp.Generator, sd15_file: Path, controlnet_file: Path
) -> None:
    square = Image.new("RGB", (64, 64), (0, 0, 0))
    square.paste((255, 255, 255), (16, 16, 48, 48))
    stripes = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8)[:, None, None] % 16 * 16, (1, 64, 3)))
    without = pixels(generator.generate("a lighthouse", seed=5, **SMALL))
    with sdcpp.Generator(sd15_file, control_net=controlnet_file, device=generator.device) as gen:
        uncontrolled = pixels(gen.generate("a lighthouse", seed=5, **SMALL))
        controlled = gen.generate("a lighthouse", seed=5, control_image=square, control_strength=0.9, **SMALL)
        other = pixels(gen.generate("a lighthouse", seed=5, control_image=stripes, **SMALL))
        off = pixels(gen.generate("a lighthouse", seed=5, control_image=square, control_strength=0.0, **SMALL))
    # With a control image the engine evaluates cond and uncond apart (docs/batched-cfg.md), so the
    # image without ControlNet to compare with is the one made the same way.
    with sdcpp.Generator(sd15_file, device=generator.device, batched_cfg=False) as gen:
        without_separate = pixels(gen.generate("a lighthouse", seed=5, **SMALL))
    assert controlled[0].parameters["control_strength"] == 0.9
    # The ControlNet's outputs are added to the UNet's skip connections, times control_strength.
    np.testing.assert_array_equal(uncontrolled, without, "a ControlNet without a control image changes nothing")
    np.testing.assert_array_equal(off, without_separate, "control_strength=0 adds nothing")
    assert np.abs(pixels(controlled) - without).mean() > 2, "the control image must change the image"
    assert np.abs(pixels(controlled) - other).mean() > 2, "another control image must give another image"


# --- TAESD --------------------------------------------------------------------------------------------


def test_taesd_replaces_the_vae(
    generator: sdcpp.Generator, sd15_file: Path, taesd_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="sdcpp"):
        with sdcpp.Generator(sd15_file, taesd=taesd_file, device=generator.device) as gen:
            tiny = pixels(gen.generate("a lighthouse", seed=6, **SMALL))
            init = Image.new("RGB", (64, 64), (200, 120, 40))
            # img2img encodes the init image with TAESD's encoder
            assert gen.generate("x", seed=6, init_image=init, strength=0.5, **SMALL)[0].size == (64, 64)
    assert "using TAE for encoding / decoding" in engine_lines(caplog)
    assert tiny.std() > 1
    assert np.abs(tiny - pixels(generator.generate("a lighthouse", seed=6, **SMALL))).mean() > 2


@needs_reference
def test_taesd_decodes_as_diffusers_autoencoder_tiny(sd15_file: Path, taesd_file: Path) -> None:
    import torch
    from diffusers import AutoencoderTiny
    from safetensors.torch import load_file

    tiny = AutoencoderTiny()  # the defaults are TAESD's (madebyollin/taesd's config.json)
    state = {name: t.float() for name, t in load_file(taesd_file).items()}
    tiny.load_state_dict(state, strict=True)
    latent, other = np.random.default_rng(3).standard_normal((2, 4, 16, 16), dtype=np.float32)

    def reference(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            image = tiny.decode(torch.from_numpy(z)[None]).sample[0].numpy()  # in [-1, 1]
        return np.clip((image + 1) / 2, 0, 1)

    theirs = reference(latent)
    assert ((theirs > 0) & (theirs < 1)).mean() > 0.5, "mostly clamped pixels would agree too easily"
    with sdcpp.Generator(sd15_file, taesd=taesd_file, device="cpu") as gen:
        ours = _testing.decode_latent(gen._ctx, latent)
    assert ours.shape == theirs.shape == (3, 128, 128)
    # 2.2e-3 measured: the engine's convolutions round their inputs to float16, the weights' type.
    error = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
    assert error < 5e-3, f"relative error {error:.2e}"
    assert np.linalg.norm(ours - reference(other)) / np.linalg.norm(theirs) > 20 * 5e-3


# --- separate component files --------------------------------------------------------------------------


# The engine reads a separate diffusion model first and picked clip_l's tensor prefix from the SD
# version known then, before any text encoder is read: "unknown", so clip_l's tensors got the prefix
# of the DiT models and SD 1.x was never recognised. Patch 0036 takes a UNet's block names as enough.
# The files are what ComfyUI-style split checkpoints hold.
def test_separate_component_files_give_the_single_files_pixels(
    generator: sdcpp.Generator, sd15_components: Path
) -> None:
    parts = {argument: sd15_components / name for argument, (name, _) in COMPONENT_FILES.items()}
    with sdcpp.Generator(device=generator.device, **parts) as gen:
        assert gen.family == "SD 1.x" == sdcpp.inspect(**parts).family
        assert gen.weight_types == generator.weight_types
        split = pixels(gen.generate("a lighthouse", seed=8, **SMALL))
    np.testing.assert_array_equal(split, pixels(generator.generate("a lighthouse", seed=8, **SMALL)))


def test_component_arguments_are_the_engines() -> None:
    assert list(COMPONENTS) == _core.component_names()
    assert set(COMPONENTS) - {"model"} <= set(inspect.signature(sdcpp.Generator).parameters)


def test_a_diffusion_model_alone_names_the_missing_components(sd15_components: Path) -> None:
    with pytest.raises(sdcpp.ModelLoadError) as e:
        sdcpp.Generator(diffusion_model=sd15_components / "diffusion_model.safetensors", device="cpu")
    assert str(e.value).startswith("vae, clip_l: SD 1.x needs these components, which diffusion_model=")
    assert "\n  vae=PATH: the VAE" in str(e.value) and "\n  clip_l=PATH: the CLIP text encoder" in str(e.value)


def test_sdxl_without_clip_g_names_it(tmp_path: Path) -> None:
    # Headers only: the set is refused before the engine reads a weight.
    xl_unet = {"input_blocks.0.0.weight": (320, 4, 3, 3), "middle_block.1.proj_in.weight": (1280, 1280),
               "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, 2048)}
    parts = {
        "diffusion_model": header_only(tmp_path / "unet.safetensors", xl_unet),
        "vae": header_only(tmp_path / "vae.safetensors", {"decoder.conv_in.weight": (512, 4, 3, 3)}),
        "clip_l": header_only(tmp_path / "clip_l.safetensors", {"text_model.embeddings.token_embedding.weight": (49408, 768)}),
    }
    with pytest.raises(sdcpp.ModelLoadError, match=r"^clip_g: SDXL needs this component, .*\n  clip_g=PATH: the OpenCLIP ViT-bigG"):
        sdcpp.Generator(device="cpu", **parts)
    with pytest.raises(sdcpp.ModelLoadError, match=r"^vae: SDXL needs this component"):
        sdcpp.Generator(device="cpu", diffusion_model=parts["diffusion_model"], clip_l=parts["clip_l"],
                        clip_g=header_only(tmp_path / "g.safetensors", {"text_model.embeddings.token_embedding.weight": (49408, 1280)}))


def test_a_vae_file_replaces_the_models_vae(generator: sdcpp.Generator, sd15_file: Path, other_vae: Path) -> None:
    with sdcpp.Generator(sd15_file, vae=other_vae, device=generator.device) as gen:
        latent = np.random.default_rng(4).standard_normal((4, 8, 8), dtype=np.float32)
        other = _testing.decode_latent(gen._ctx, latent)
    ours = _testing.decode_latent(generator._ctx, latent)
    assert np.abs(other - ours).mean() > 0.05, "the VAE file's weights must decode the latent"


def test_diffusers_component_files_are_refused_with_the_engines_reason(sd15_folder: Path) -> None:
    # docs/engine-notes.md (Loading): separate files in diffusers' names are not recognised; in original
    # names they are (the test above, engine patch 0036).
    with pytest.raises(sdcpp.ModelLoadError, match="get sd version from file failed"):
        sdcpp.Generator(
            diffusion_model=sd15_folder / "unet" / "diffusion_pytorch_model.safetensors",
            vae=sd15_folder / "vae" / "diffusion_pytorch_model.safetensors",
            clip_l=sd15_folder / "text_encoder" / "model.safetensors",
            device="cpu",
        )


# --- weight_type --------------------------------------------------------------------------------------


def test_weight_type_converts_the_weights_at_load(generator: sdcpp.Generator, sd15_file: Path) -> None:
    settings = dict(width=64, height=64, steps=4, seed=9)
    with sdcpp.Generator(sd15_file, weight_type="q8_0", device=generator.device) as gen:
        quantized = pixels(gen.generate("a lighthouse", **settings))
    f16 = pixels(generator.generate("a lighthouse", **settings))
    # 8-bit weights: close to the float16 image (38.5 dB measured on the CPU), but not the same.
    assert np.abs(quantized - f16).max() > 0 and psnr(quantized, f16) > 30, psnr(quantized, f16)


# third_party/patches/0025: the engine counted the types of the file's tensors, not those weight_type
# converts them to, so this reported {"f16": ...} only.
def test_weight_types_report_the_converted_types(generator: sdcpp.Generator, sd15_file: Path) -> None:
    with sdcpp.Generator(sd15_file, weight_type="q8_0", device="cpu") as gen:
        converted = gen.weight_types
    for part, types in generator.weight_types.items():
        assert sum(converted[part].values()) == sum(types.values()), part  # the same tensors, counted anew
    # Measured: the matrices ggml can quantize (rows a multiple of 32) become q8_0; 3x3 convolutions,
    # biases and norms keep the file's f16.
    assert converted == {"conditioner": {"f16": 99, "q8_0": 97}, "diffusion": {"f16": 395, "q8_0": 291},
                         "vae": {"f16": 196, "q8_0": 52}}


# --- keep_clip_on_cpu / keep_vae_on_cpu -------------------------------------------------------------------


def test_keep_clip_and_vae_on_cpu_move_them_off_the_gpu(
    generator: sdcpp.Generator, sd15_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if generator.device == "CPU":
        pytest.skip("needs a GPU device (SDCPP_TEST_DEVICE): on the CPU both already run there")
    settings = dict(width=64, height=64, steps=4, seed=10)
    with caplog.at_level("INFO", logger="sdcpp"):
        with sdcpp.Generator(sd15_file, device=generator.device, keep_clip_on_cpu=True, keep_vae_on_cpu=True) as gen:
            image = pixels(gen.generate("a lighthouse", **settings))
    lines = engine_lines(caplog)
    assert "CLIP: Using CPU backend" in lines and "VAE Autoencoder: Using CPU backend" in lines
    assert re.search(r"text_encoders [\d.]+MB\(RAM\)", lines) and re.search(r"vae [\d.]+MB\(RAM\)", lines), lines[-600:]
    assert psnr(image, pixels(generator.generate("a lighthouse", **settings))) > 30
