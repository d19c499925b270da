"""Flux Fill, Flux Control, Flex.2 and Chroma Radiance from the component files people download
(tests/models_flux_variants.py): each is detected as its family and runs the workflow it exists for,
whose inputs change its pixels; inputs it lacks give an image or a clear exception, never an abort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sdcpp

from .models_flux_variants import (  # noqa: F401  (fixtures)
    anima_files, chroma_radiance_file, flex2_files, flux_control_files, flux_fill_files, flux_variants_dir,
)

# 32x32 (a 4x4 latent): the VAE's encoding and decoding are most of a generation's time. cfg 1: one
# evaluation per step (the Flux ones are guidance-distilled).
TINY = dict(width=32, height=32, steps=2, cfg_scale=1.0)
INIT = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
RIGHT = np.zeros((32, 32), np.uint8)
RIGHT[:, 16:] = 255  # white: repaint
LEFT = 255 - RIGHT
DEPTH = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 32, axis=0).repeat(3, axis=2)  # a ramp
EDGES = np.zeros((32, 32, 3), np.uint8)
EDGES[8:24:4] = 255  # lines, as a canny map has them

NO_MASK = "inpainting model requires both an init image and a mask image"


def pixels(gen: sdcpp.Generator, prompt: str = "a lighthouse at dusk", **kwargs) -> np.ndarray:
    return np.asarray(gen.generate(prompt, **{"seed": 1, **TINY, **kwargs})[0], dtype=np.float64)


def change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


@pytest.mark.parametrize("fixture, family", [
    ("flux_fill_files", "Flux Fill"), ("flux_control_files", "Flux Control"), ("flex2_files", "Flex.2"),
])
def test_flux_variants_are_detected_from_their_input_width(request, fixture: str, family: str) -> None:
    """The engine and inspect tell them from Flux.1 by img_in's width alone (384, 128, 196)."""
    files = request.getfixturevalue(fixture)
    info = sdcpp.inspect(**files)
    assert (info.family, info.missing, info.recommended) == (family, [], ["t5xxl"])


@pytest.fixture(scope="class")
def gen(request) -> sdcpp.Generator:
    with sdcpp.Generator(**request.getfixturevalue(request.cls.files), device="cpu") as g:
        yield g


class TestFluxFill:
    files = "flux_fill_files"

    def test_inpaints_where_the_mask_says(self, gen: sdcpp.Generator) -> None:
        assert gen.family == "Flux Fill"
        right = pixels(gen, init_image=INIT, mask_image=RIGHT)
        assert right.std() > 5
        np.testing.assert_array_equal(pixels(gen, init_image=INIT, mask_image=RIGHT), right, "the seed fixes the image")
        assert change(pixels(gen, init_image=INIT, mask_image=LEFT), right) > 5, "another mask, another image"
        assert change(pixels(gen, init_image=255 - INIT, mask_image=RIGHT), right) > 1, "the picture is read"

    def test_without_a_mask_it_repaints_all_and_says_so(self, gen: sdcpp.Generator, caplog) -> None:
        """The engine fills an absent mask with white (repaint everything) and an absent picture with
        gray, and warns; that is an image, not a failure."""
        with caplog.at_level("WARNING", logger="sdcpp"):
            everything = pixels(gen, init_image=INIT)
        assert NO_MASK in caplog.text
        np.testing.assert_array_equal(pixels(gen, init_image=INIT, mask_image=np.full((32, 32), 255, np.uint8)),
                                      everything)
        assert pixels(gen).std() > 5  # text to image: neither
        with pytest.raises(sdcpp.InvalidArgumentError, match="^mask_image: inpainting needs init_image as well"):
            gen.generate("x", mask_image=RIGHT, **TINY)
        with pytest.raises(sdcpp.InvalidArgumentError, match=r"^control_image: needs a ControlNet.*Flux Control, Flex\.2"):
            gen.generate("x", control_image=DEPTH, **TINY)


class TestFluxControl:
    files = "flux_control_files"

    def test_the_control_image_steers_it(self, gen: sdcpp.Generator) -> None:
        assert gen.family == "Flux Control"
        depth = pixels(gen, control_image=DEPTH)
        assert depth.std() > 5
        np.testing.assert_array_equal(pixels(gen, control_image=DEPTH), depth)
        assert change(pixels(gen, control_image=EDGES), depth) > 1
        assert change(pixels(gen), depth) > 1  # without one the engine gives it a latent of zeros
        image = gen.generate("x", control_image=DEPTH, seed=1, steps=1, cfg_scale=1.0)[0]
        assert image.size == (32, 32) and image.parameters["inputs"] == ["control_image"]  # its size is the image's

    def test_a_control_image_of_another_size_is_refused(self, gen: sdcpp.Generator) -> None:
        with pytest.raises(sdcpp.InvalidArgumentError, match=r"^control_image: is 16x16 pixels .* the output is 32x32"):
            gen.generate("x", control_image=DEPTH[:16, :16], **TINY)


class TestFlex2:
    files = "flex2_files"

    def test_inpaints_and_reads_a_control_image(self, gen: sdcpp.Generator) -> None:
        """Patch 0049: every Flex.2 generation aborted on a GGML_ASSERT (the control branch replaced the
        33-channel inpainting input with the 16-channel control latent)."""
        assert gen.family == "Flex.2"
        plain = pixels(gen)
        assert plain.std() > 5
        right = pixels(gen, init_image=INIT, mask_image=RIGHT)
        assert change(pixels(gen, init_image=INIT, mask_image=LEFT), right) > 1
        controlled = pixels(gen, control_image=DEPTH)
        assert change(controlled, plain) > 1
        assert change(pixels(gen, control_image=EDGES), controlled) > 1
        both = pixels(gen, init_image=INIT, mask_image=RIGHT, control_image=DEPTH)
        assert change(both, right) > 1
        np.testing.assert_array_equal(pixels(gen, init_image=INIT, mask_image=RIGHT, control_image=DEPTH), both)


# --- Chroma Radiance: no VAE, T5-XXL only (not written: docs/dit-families.md) ---------------------------------


@pytest.fixture(scope="module")
def chroma(chroma_radiance_file: Path) -> sdcpp.Generator:
    with sdcpp.Generator(diffusion_model=chroma_radiance_file, device="cpu") as g:
        yield g


# One step: Chroma's modulation network (344 rows through 5 layers of 5120, fixed by flux.hpp) is most of an
# evaluation's 0.18 TFLOP, whatever the image's size: 5-20 s an image on 2 cores. 40x24: not whole patches.
ONE = dict(width=40, height=24, steps=1, cfg_scale=1.0)


def test_chroma_radiance_draws_pixels_of_any_size_without_a_vae(chroma_radiance_file: Path,
                                                                 chroma: sdcpp.Generator) -> None:
    """It works on pixels in 16x16 patches, padding the image to whole ones, so any size is allowed
    (size_multiple 1). Patch 0050: the padded output reached the sampler uncropped, and a size that was
    not a multiple of 16 failed ("Tensor shapes are not broadcastable: lhs_shape=[80, 64, 3, 1],
    rhs_shape=[72, 64, 3, 1]")."""
    info = sdcpp.inspect(diffusion_model=chroma_radiance_file)
    assert (info.family, info.missing, info.recommended) == ("Chroma Radiance", [], ["t5xxl"])
    assert chroma.family == "Chroma Radiance" and "'vae'" not in repr(chroma) and chroma.size_multiple == 1
    assert (chroma.defaults["cfg_scale"], chroma.defaults["guidance"]) == (4.0, None)
    image = pixels(chroma, seed=1, **ONE)
    assert image.shape == (24, 40, 3) and image.std() > 5
    # Without T5-XXL the engine conditions on nothing ("No text encoders provided, cannot process
    # prompts!"): the seed alone fixes the image and the prompt has no effect, which is why inspect
    # recommends t5xxl.
    np.testing.assert_array_equal(pixels(chroma, "a red barn in snow", seed=1, **ONE), image)


# --- Anima: transformer, Qwen3-0.6B and Qwen-Image's VAE -------------------------------------------------------


def test_anima_from_its_three_files(anima_files: dict[str, Path]) -> None:
    info = sdcpp.inspect(**anima_files)
    assert (info.family, info.missing, info.recommended) == ("Anima", [], [])
    with pytest.raises(sdcpp.ModelLoadError, match=r"llm=PATH"):
        sdcpp.Generator(**{**anima_files, "llm": None}, device="cpu")
    with sdcpp.Generator(**anima_files, device="cpu") as gen:
        assert gen.family == "Anima"
        assert (gen.defaults["cfg_scale"], gen.defaults["flow_shift"]) == (6.0, 3.0)
        image = pixels(gen)
        assert image.std() > 5
        np.testing.assert_array_equal(pixels(gen), image, "the seed fixes the image")
        # Measured 0.63 of 255: Qwen3's states reach the transformer only through the adapter's and the
        # block's cross-attention, both random here.
        assert change(pixels(gen, "a red barn in snow"), image) > 0.3, "the prompt is read"
