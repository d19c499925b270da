"""The UNet channel variants: inpainting (9 input channels) and instruct-pix2pix (8) models of SD 1.x,
SD 2.x and SDXL, from random-weight files (tests/models_unet_variants.py).

Each file is detected as its family and draws in the workflow it exists for: an inpainting model
with ``init_image`` and ``mask_image`` (the engine hands its UNet the mask and the masked image's
latent beside the noisy latent), an instruct-pix2pix model with the image to edit as its one
reference image (docs/unet-variants.md). Used otherwise, the
engine draws and says so in a warning (an inpainting model without a mask, an instruct-pix2pix model
without an image). The hires fix used to abort on both (patch 0047). SD 2.x's (2.6 GB) and SDXL's
(q4_0 GGUF, 2.1 GB each) are marked slow.
"""

from __future__ import annotations

import logging
from typing import Iterator

import numpy as np
import pytest

import sdcpp
from sdcpp import InvalidArgumentError

from .models_unet_variants import sd2_inpaint, sd15_inpaint, sd15_ip2p, sdxl_inpaint, sdxl_ip2p  # noqa: F401 (fixtures)

SMALL = dict(width=64, height=64, steps=1, seed=3, cfg_scale=5.0)


def _model(fixture: str):
    """A class whose tests run on the model file of ``fixture``, named statically so that conftest.built
    can delete a run-only file after its last test."""

    def decorate(cls: type) -> type:
        cls.model = fixture
        return pytest.mark.usefixtures(fixture)(cls)

    return decorate


def _picture(seed: int) -> np.ndarray:
    # A colour of its own under the noise: with random weights, two pictures of noise alone encode to
    # latents too alike to tell apart after SDXL's UNet (1.2 levels of 255 apart)
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 256, 3) + rng.integers(-40, 41, (64, 64, 3)), 0, 255).astype(np.uint8)


def _mask(rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((64, 64), np.uint8)
    mask[rows, cols] = 255
    return mask


def _draw(gen: sdcpp.Generator, prompt: str = "a red barn", **kwargs: object) -> np.ndarray:
    image = gen.generate(prompt, **{**SMALL, **kwargs})[0]
    assert image.size == ((128, 128) if "hires" in kwargs else (64, 64))
    return np.asarray(image).astype(int)


def _warned(caplog: pytest.LogCaptureFixture, gen: sdcpp.Generator, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records if r.name == gen.logger.name and r.levelno == logging.WARNING)


class _Family:
    family: str
    model: str  # the fixture of its file (_model)
    # The checks of misuse, img_cfg_scale and the hires fix (patch 0047) run the same engine code for
    # SD 1.x, 2.x and XL: they run on SD 1.x only, the cheapest.
    every_check: bool = False

    @pytest.fixture
    def every_check_only(self) -> None:
        if not self.every_check:
            pytest.skip("the same engine code as for SD 1.x, which runs it")

    @pytest.fixture(scope="class")
    @classmethod
    def gen(cls, request: pytest.FixtureRequest) -> Iterator[sdcpp.Generator]:
        with sdcpp.Generator(request.getfixturevalue(cls.model)) as gen:
            yield gen

    def test_is_detected_as_its_family(self, gen: sdcpp.Generator) -> None:
        assert sdcpp.inspect(gen.model).family == gen.family == self.family
        assert gen.prediction == "eps"


class _Inpaint(_Family):
    INIT = _picture(1)
    TOP, LEFT = _mask(slice(0, 32), slice(None)), _mask(slice(None), slice(0, 32))

    def test_the_mask_decides_the_image(self, gen: sdcpp.Generator) -> None:
        top = _draw(gen, init_image=self.INIT, mask_image=self.TOP)
        left = _draw(gen, init_image=self.INIT, mask_image=self.LEFT)
        assert np.abs(top - left).mean() > 2, "another mask must repaint another image"
        if self.every_check:  # img_cfg_scale guides by the masked image apart from the text (a third UNet call)
            guided = _draw(gen, init_image=self.INIT, mask_image=self.TOP, img_cfg_scale=1.0)
            assert np.abs(guided - top).mean() > 1

    @pytest.mark.usefixtures("every_check_only")
    def test_without_mask_or_image_it_draws_and_warns(self, gen: sdcpp.Generator, caplog: pytest.LogCaptureFixture) -> None:
        """The engine repaints everything (a mask of ones; no masked image: zeros) and warns."""
        with caplog.at_level(logging.WARNING, logger="sdcpp"):
            unmasked = _draw(gen, init_image=self.INIT)
            assert _warned(caplog, gen, "inpainting model requires both an init image and a mask image")
            caplog.clear()
            text_only = _draw(gen)
            assert _warned(caplog, gen, "inpainting model requires both an init image and a mask image")
        assert np.abs(unmasked - text_only).mean() > 1

    def test_references_are_refused(self, gen: sdcpp.Generator) -> None:
        with pytest.raises(InvalidArgumentError, match=rf"^ref_images: {self.family} does not use reference images"):
            gen.generate("x", ref_images=[self.INIT], **SMALL)

    @pytest.mark.usefixtures("every_check_only")
    def test_hires_fix_scales_the_mask_and_masked_image(self, gen: sdcpp.Generator) -> None:
        """The second pass's UNet is given the mask and masked image at its size (it aborted before)."""
        image = _draw(gen, init_image=self.INIT, mask_image=self.TOP, hires=sdcpp.HiresFix(scale=2.0, upscaler="Latent"))
        assert image.std() > 10


class _Pix2Pix(_Family):
    A, B = _picture(1), _picture(2)

    def test_the_image_to_edit_decides_the_image(self, gen: sdcpp.Generator) -> None:
        a = _draw(gen, "make it red", ref_images=[self.A])
        b = _draw(gen, "make it red", ref_images=[self.B])
        # SD 1.x: about 50 levels of 255 apart; SDXL's random UNet weighs the image's channels less (1.2)
        assert np.abs(a - b).mean() > 0.5, "another image to edit must give another image"
        np.testing.assert_array_equal(_draw(gen, "make it red", ref_images=[self.A]), a)
        if self.every_check:  # img_cfg_scale: instruct-pix2pix's image guidance, a third UNet call per step
            assert np.abs(_draw(gen, "make it red", ref_images=[self.A], img_cfg_scale=1.0) - a).mean() > 1

    @pytest.mark.usefixtures("every_check_only")
    def test_without_an_image_it_draws_and_warns(self, gen: sdcpp.Generator, caplog: pytest.LogCaptureFixture) -> None:
        """The engine edits a black image (img_cfg_scale set to cfg_scale) and warns, also when the picture
        was given as init_image, which only starts the sampling from it."""
        with caplog.at_level(logging.WARNING, logger="sdcpp"):
            blank = _draw(gen, "make it red")
            assert _warned(caplog, gen, "This model needs at least one reference image")
            caplog.clear()
            started = _draw(gen, "make it red", init_image=self.A)
            assert _warned(caplog, gen, "This model needs at least one reference image")
        assert np.abs(blank - started).mean() > 1

    def test_edits_one_image(self, gen: sdcpp.Generator) -> None:
        with pytest.raises(InvalidArgumentError, match=rf"^ref_images: {self.family} edits one image"):
            gen.generate("x", ref_images=[self.A, self.B], **SMALL)

    @pytest.mark.usefixtures("every_check_only")
    def test_hires_fix_scales_the_image_to_edit(self, gen: sdcpp.Generator) -> None:
        """The second pass's UNet is given the image to edit at its size (it aborted before)."""
        image = _draw(gen, "make it red", ref_images=[self.A], hires=sdcpp.HiresFix(scale=2.0, upscaler="Latent"))
        assert image.std() > 10


@_model("sd15_inpaint")
class TestSD1Inpaint(_Inpaint):
    family, every_check = "SD 1.x Inpaint", True


@_model("sd15_ip2p")
class TestSD1Pix2Pix(_Pix2Pix):
    family, every_check = "Instruct-Pix2Pix", True


@pytest.mark.slow  # 2.6 GB to write and 20 s more: over the suite's share (SD 1.x runs every check)
@_model("sd2_inpaint")
class TestSD2Inpaint(_Inpaint):
    """The engine decides eps or v for SD 2.x with one UNet call, given a zero mask and masked image
    for an inpainting model (is_using_v_parameterization_for_sd2)."""

    family = "SD 2.x Inpaint"


@pytest.mark.slow
@_model("sdxl_inpaint")
class TestSDXLInpaint(_Inpaint):
    family = "SDXL Inpaint"


@pytest.mark.slow
@_model("sdxl_ip2p")
class TestSDXLPix2Pix(_Pix2Pix):
    family = "SDXL Instruct-Pix2Pix"
