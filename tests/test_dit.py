"""Diffusion transformers from the component files people download (tests/models_dit.py): each is
detected as its family by the engine and by ``sdcpp.inspect``, and makes an image its text steers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import sdcpp

# cfg 1: one evaluation per step (Flux dev is guidance-distilled; for SD3 it halves the test's time).
TINY = dict(width=64, height=64, steps=2, cfg_scale=1.0)


def pixels(gen: sdcpp.Generator, prompt: str, seed: int) -> np.ndarray:
    return np.asarray(gen.generate(prompt, seed=seed, **TINY)[0], dtype=np.float64)


def check_family_and_image(files: dict[str, Path], family: str, diffusion_weights: str = "f16") -> None:
    info = sdcpp.inspect(**files)
    assert info.family == family
    assert set(files) <= set(info.components)
    with sdcpp.Generator(**files, device="cpu") as gen:
        assert gen.family == family
        # the type of the weight matrices, not of the more numerous f32 biases and norm scales
        assert f"'diffusion': '{diffusion_weights}'" in repr(gen)
        image = pixels(gen, "a lighthouse at dusk", seed=1)
        assert image.shape == (64, 64, 3)
        assert image.std() > 5, "a random-weight model still draws something other than a flat image"
        np.testing.assert_array_equal(pixels(gen, "a lighthouse at dusk", seed=1), image, "the seed fixes the image")
        # CLIP-L is read: another prompt gives another image (without a text encoder both would match).
        assert np.abs(pixels(gen, "a red barn in snow", seed=1) - image).mean() > 1


def test_flux_from_component_files(flux_files: dict[str, Path]) -> None:
    check_family_and_image(flux_files, "Flux")


def test_flux_from_a_gguf_transformer(flux_gguf_files: dict[str, Path]) -> None:
    assert "q4_0" in sdcpp.inspect(flux_gguf_files["diffusion_model"]).dtypes
    check_family_and_image(flux_gguf_files, "Flux", diffusion_weights="q4_0")


def test_flux_reads_its_depth_from_the_file(flux_files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="sdcpp"), sdcpp.Generator(**flux_files, device="cpu"):
        pass
    assert "flux: depth = 2, depth_single_blocks = 2, guidance_embed = true" in caplog.text


def test_sd3_from_a_gguf_transformer_and_component_files(sd3_files: dict[str, Path]) -> None:
    check_family_and_image(sd3_files, "SD3.x", diffusion_weights="q4_0")


# --- reference images (Flux Kontext's in-context references: the engine appends their latents' tokens) -------


@pytest.fixture(scope="module")
def flux(flux_files: dict[str, Path]) -> sdcpp.Generator:
    with sdcpp.Generator(**flux_files, device="cpu") as gen:
        yield gen


def _noise_image(seed: int, width: int = 64, height: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def image_of(gen: sdcpp.Generator, **kwargs) -> np.ndarray:
    return np.asarray(gen.generate("a lighthouse at dusk", seed=3, **{**TINY, **kwargs})[0], dtype=np.float64)


def mean_change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def test_a_reference_image_steers_flux_and_the_same_one_gives_the_same_pixels(flux: sdcpp.Generator) -> None:
    """Measured mean changes, of 255: a reference 2.5-2.8; black against white 1.95, two noise images 1.05."""
    plain = image_of(flux)
    black, white = np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)
    referenced = image_of(flux, ref_images=[black])
    assert mean_change(referenced, plain) > 1.5
    np.testing.assert_array_equal(image_of(flux, ref_images=[Image.fromarray(black)]), referenced)
    assert mean_change(image_of(flux, ref_images=[white]), referenced) > 1
    assert mean_change(image_of(flux, ref_images=[_noise_image(2, 80, 48)]), plain) > 1.5  # of any size
    np.testing.assert_array_equal(image_of(flux, ref_images=[]), plain)
    np.testing.assert_array_equal(image_of(flux, ref_images=None), plain)


def test_reference_settings_change_what_flux_sees(flux: sdcpp.Generator) -> None:
    """Measured mean changes: own indices for two references 0.64; a 128x128 reference unscaled 4.8."""
    two = [_noise_image(1), _noise_image(2)]
    side_by_side = image_of(flux, ref_images=two)
    assert mean_change(image_of(flux, ref_images=two, increase_ref_index=True), side_by_side) > 0.3
    large = [_noise_image(4, 128, 128)]  # scaled to the output's 64x64 area unless told otherwise
    assert mean_change(image_of(flux, ref_images=large, auto_resize_ref_image=False),
                       image_of(flux, ref_images=large)) > 1
    # A reference already of the output's size is encoded the same either way.
    np.testing.assert_array_equal(image_of(flux, ref_images=two[:1], auto_resize_ref_image=False),
                                  image_of(flux, ref_images=two[:1]))


def test_references_are_recorded_and_checked(flux: sdcpp.Generator, tmp_path: Path) -> None:
    Image.fromarray(_noise_image(1)).save(tmp_path / "ref.png")
    image = flux.generate("x", **TINY, ref_images=[tmp_path / "ref.png"])[0]
    assert image.parameters["inputs"] == ["ref_images"]
    assert (image.parameters["auto_resize_ref_image"], image.parameters["increase_ref_index"]) == (True, False)
    for refs, kwargs, message in [
        ([_noise_image(1, 68, 64)], dict(auto_resize_ref_image=False),
         r"^ref_images\[0\]: 68x64 pixels; without auto_resize_ref_image each reference must be a positive multiple "
         r"of 8 on both sides for Flux"),
        ([_noise_image(1, 400, 1)], {}, r"^ref_images\[0\]: 400x1 pixels is too narrow to scale to the output's area"),
    ]:
        with pytest.raises(sdcpp.InvalidArgumentError, match=message):
            flux.generate("x", **TINY, ref_images=refs, **kwargs)
    for refs, message in [
        (_noise_image(1), r"^ref_images: must be a list of images \(a list of one for one image\), not ndarray"),
        ([np.zeros((8, 8), np.uint8)], r"^ref_images\[0\]: must be uint8 pixels of shape \(height, width, 3\)"),
        ([tmp_path / "missing.png"], r"^ref_images\[0\]: cannot read '.*missing.png' as an image"),
    ]:
        with pytest.raises(sdcpp.InvalidArgumentError, match=message):
            sdcpp.GenerationParams("x", ref_images=refs)


def test_instruct_pix2pix_edits_one_reference() -> None:
    """The engine takes the first reference as the image to edit and ignores the others (no fixture loads)."""
    pix2pix = SimpleNamespace(family="Instruct-Pix2Pix", size_multiple=64)
    two = sdcpp.GenerationParams("x", width=64, height=64, ref_images=[_noise_image(1), _noise_image(2)])
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^ref_images: Instruct-Pix2Pix edits one image, the first "
                                                         r"reference; the engine ignores the other 1: give one"):
        sdcpp.Generator._check_references(pix2pix, two)
    sdcpp.Generator._check_references(pix2pix, replace(two, ref_images=two.ref_images[:1]))


# --- skip-layer guidance (on SD3.5, the model it was made for) and flow shift -------------------------------


@pytest.fixture(scope="module")
def sd3(sd3_files: dict[str, Path]) -> sdcpp.Generator:
    with sdcpp.Generator(**sd3_files, device="cpu") as gen:
        yield gen


def test_skip_layer_guidance_steers_sd3_and_scale_0_or_no_layers_is_none(sd3: sdcpp.Generator) -> None:
    """One step (about 20 s a generation): the engine guides steps inside (layer_start, layer_end) x (steps + 1),
    so the default window (1% to 20%) holds none of so few; this one holds every step. Measured mean change: 38 of 255."""
    plain = image_of(sd3, steps=1)
    slg = sdcpp.SkipLayerGuidance(layers=(5, 6, 7), layer_start=0.0, layer_end=1.0, scale=3.0)
    assert mean_change(image_of(sd3, steps=1, slg=slg), plain) > 10
    np.testing.assert_array_equal(image_of(sd3, steps=1, slg=replace(slg, scale=0.0)), plain)
    np.testing.assert_array_equal(image_of(sd3, steps=1, slg=replace(slg, layers=())), plain)


def test_flow_shift_changes_a_flow_models_image_and_its_default_is_leaving_it_unset(flux: sdcpp.Generator) -> None:
    """Measured mean change: 19 of 255 for a shift of 8 against Flux.1's 1.15."""
    plain = image_of(flux)
    assert flux.defaults["flow_shift"] == pytest.approx(1.15)
    np.testing.assert_array_equal(image_of(flux, flow_shift=flux.defaults["flow_shift"]), plain)
    assert mean_change(image_of(flux, flow_shift=8.0), plain) > 5


def test_cache_mode_refusal_follows_the_engine_for_dit_models(
    flux: sdcpp.Generator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the refusal lifted, the engine warns for exactly the modes sdcpp refuses for a DiT model; the
    others run (spectrum too: the engine's sample-cache.cpp takes it for UNet and DiT models)."""
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^cache_mode: ucache does not apply to Flux \(a DiT model\); "
                                                         r"use one of cache-dit, dbcache, disabled, easycache, "
                                                         r"spectrum, taylorseer"):
        image_of(flux, cache_mode="ucache")
    monkeypatch.setattr(sdcpp.generator, "DIT_CACHE_MODES", frozenset(sdcpp.CacheMode))
    unsupported = set()
    for mode in sdcpp.CacheMode:
        caplog.clear()
        with caplog.at_level("WARNING", logger="sdcpp"):
            image_of(flux, cache_mode=mode)
        if "requested but not supported for this model type" in caplog.text:
            unsupported.add(mode)
    assert unsupported == set(sdcpp.CacheMode) - sdcpp.names.DIT_CACHE_MODES == {"ucache"}
