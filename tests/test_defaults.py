"""Per-family defaults: settings left None take the loaded family's recommended values, which
Generator.defaults lists and each image's parameters record."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import sdcpp
from sdcpp import GenerationParams
from sdcpp.defaults import family_defaults
from sdcpp._detect import FAMILIES


def test_sd1_defaults_are_512_20_steps_cfg_7(generator: sdcpp.Generator) -> None:
    assert dict(generator.defaults) == {
        "width": 512, "height": 512, "steps": 20, "cfg_scale": 7.0, "guidance": None, "flow_shift": None,
        "sampler": sdcpp.Sampler.EULER_A, "scheduler": sdcpp.Scheduler.DISCRETE,
    }
    with pytest.raises(TypeError):
        generator.defaults["width"] = 64  # type: ignore[index]


def test_unset_settings_take_the_defaults_and_explicit_ones_win(generator: sdcpp.Generator) -> None:
    resolved = generator.with_defaults(GenerationParams("x"))
    assert (resolved.width, resolved.height, resolved.steps, resolved.cfg_scale) == (512, 512, 20, 7.0)
    assert (resolved.sampler, resolved.scheduler) == ("euler_a", "discrete")
    mine = generator.with_defaults(GenerationParams("x", width=128, steps=3, cfg_scale=2.0, sampler="lcm"))
    assert (mine.width, mine.height, mine.steps, mine.cfg_scale) == (128, 512, 3, 2.0)
    assert mine.scheduler == "lcm", "the scheduler's default follows the sampler chosen"


def test_images_record_the_values_used(generator: sdcpp.Generator) -> None:
    image = generator.generate("a lighthouse", width=64, height=64, steps=2, seed=4)[0]
    assert (image.params.cfg_scale, image.params.sampler, image.params.guidance) == (7.0, "euler_a", None)
    recorded = image.parameters  # what the PNG's metadata holds
    assert (recorded["cfg_scale"], recorded["steps"], recorded["width"]) == (7.0, 2, 64)
    explicit = generator.generate("a lighthouse", width=64, height=64, steps=2, seed=4, cfg_scale=7.0)[0]
    np.testing.assert_array_equal(np.asarray(image), np.asarray(explicit))


def test_an_input_image_gives_the_size(generator: sdcpp.Generator) -> None:
    init = Image.new("RGB", (128, 64), (200, 120, 40))
    params = GenerationParams("x", init_image=init, strength=0.5)
    assert (params.width, params.height) == (128, 64)
    with pytest.raises(sdcpp.InvalidArgumentError, match="but the output is 64x64"):
        GenerationParams("x", init_image=init, width=64, height=64)


def test_every_family_has_its_defaults() -> None:
    assert family_defaults("SD 2.x", "eps").width == 512 and family_defaults("SD 2.x", "v").width == 768
    flux = family_defaults("Flux", "flux_flow")
    assert (flux.width, flux.cfg_scale, flux.guidance) == (1024, 1.0, 3.5)  # docs/flux.md; the engine's 3.5
    assert family_defaults("SD3.x", "sd3_flow").cfg_scale == 4.5  # docs/sd3.md
    for family in FAMILIES:
        row = family_defaults(family, "eps")
        assert row.width % 64 == 0 and row.height % 16 == 0 and row.steps >= 1, family
