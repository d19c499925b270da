"""Hires fix: generate(..., hires=HiresFix(...)) samples again at the target size; HiresFix is one field
of GenerationParams, with its C++ twin, metadata, command line form and checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sdcpp
from sdcpp import GenerationParams, HiresFix, HiresUpscaler, _core
from sdcpp._core import _testing
from sdcpp.__main__ import parser
from sdcpp.cli_options import given, setting_options
from sdcpp.images import GeneratedImage
from sdcpp.params import settings, to_core

from .models_upscale import esrgan_dir  # noqa: F401 (a fixture)

SMALL = dict(width=64, height=64, steps=2, seed=5)


def test_upscaler_enum_is_the_engines_name_table() -> None:
    assert [u.value for u in HiresUpscaler] == _testing.hires_upscalers()


def test_the_engine_struct_has_the_hires_fields_filled_by_name() -> None:
    assert [f.name for f in settings(HiresFix)] == _core.HiresFix.fields
    hires = HiresFix(width=192, height=128, steps=3, denoising_strength=0.25, model="up.pth", tile_size=64)
    core = to_core(GenerationParams("a", hires=hires)).hires
    assert {f: getattr(core, f) for f in _core.HiresFix.fields} == {
        "scale": 2.0, "width": 192, "height": 128, "steps": 3, "denoising_strength": 0.25, "upscaler": "Model",
        "model": "up.pth", "tile_size": 64,
    }
    unset = to_core(GenerationParams("a", hires=HiresFix())).hires
    assert (unset.width, unset.height, unset.steps, unset.upscaler, unset.model) == (0, 0, 0, "Latent", "")
    assert to_core(GenerationParams("a")).hires is None


def test_hires_is_recorded_in_the_metadata_and_round_trips(tmp_path: Path) -> None:
    params = GenerationParams("a", seed=3, hires=HiresFix(scale=1.5, steps=4, upscaler="Lanczos"))
    assert GenerationParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params
    image = GeneratedImage.from_array(np.zeros((8, 8, 3), np.uint8), params, {"model": "m.safetensors"})
    image.save(tmp_path / "a.png")
    assert GeneratedImage.read_parameters(tmp_path / "a.png") == params
    assert "Denoising strength: 0.7, Hires upscale: 1.5, Hires steps: 4, Hires upscaler: Lanczos" in image.info["parameters"]


def test_hires_is_given_as_a_dict_or_as_key_values_on_the_command_line() -> None:
    expected = HiresFix(scale=2, steps=3, upscaler=HiresUpscaler.LANCZOS)
    assert GenerationParams("a", hires={"steps": 3, "upscaler": "Lanczos"}).hires == expected
    assert GenerationParams("a", hires=True).hires == HiresFix()
    args = parser().parse_args(["generate", "m", "a", "--hires", "scale=2, steps=3,upscaler=Lanczos"])
    given_settings = given(args, setting_options())
    assert GenerationParams("a", hires=given_settings["hires"].apply(None)).hires == expected
    assert "hires" not in given(parser().parse_args(["generate", "m", "a"]), setting_options())


@pytest.mark.parametrize("text", ["scale=two", "scale", "sharpness=1", "upscaler=bicubic"])
def test_the_command_line_refuses_bad_hires_text(text: str) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["generate", "m", "a", "--hires", text])


@pytest.mark.parametrize(
    "hires, message",
    [
        (dict(scale=0.5), r"^hires\.scale: must be a number from 1 to 8, not 0\.5"),
        (dict(steps=0), r"^hires\.steps: must be an integer from 1 to 10000 or None, not 0"),
        (dict(denoising_strength=0), r"^hires\.denoising_strength: must be a number from 0\.01 to 1, not 0"),
        (dict(tile_size=8), r"^hires\.tile_size: must be an integer from 16 to 1024, not 8"),
        (dict(width=128), r"^hires\.width, hires\.height: give both, or neither"),
        (dict(upscaler="bicubic"), r"^hires\.upscaler: unknown upscaler 'bicubic'; one of None, Latent, "),
        (dict(upscaler="Model"), r"^hires\.model: upscaler 'Model' needs an ESRGAN file"),
        (dict(model="x.pth", upscaler="Latent"), r"^hires\.model: only upscaler 'Model' uses a model, not 'Latent'"),
        (dict(sharpness=1), r"^hires: unknown field\(s\) sharpness of HiresFix"),
        ("scale=2", r"^hires: must be a HiresFix, True, False or None, not 'scale=2'"),
        (2, r"^hires: must be a HiresFix, True, False or None, not 2"),
    ],
)
def test_invalid_hires_values_name_the_field(hires: object, message: str) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=message):
        GenerationParams("a", hires=hires)


def test_the_target_and_the_model_are_checked_before_the_engine_runs(generator: sdcpp.Generator,
                                                                      tmp_path: Path) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^hires\.width: must be a positive multiple of 64 .* not 96"):
        generator.generate("a", **SMALL, hires=HiresFix(scale=1.5))
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^hires\.height: must be a positive multiple of 64 .* not 100"):
        generator.generate("a", **SMALL, hires=HiresFix(width=128, height=100))
    with pytest.raises(sdcpp.ModelNotFoundError, match=r"^hires\.model: no such file"):
        generator.generate("a", **SMALL, hires=HiresFix(model=tmp_path / "missing.pth"))


def test_upscaler_none_is_the_first_pass(generator: sdcpp.Generator) -> None:
    plain = generator.generate("a lighthouse", **SMALL)[0]
    same = generator.generate("a lighthouse", **SMALL, hires=HiresFix(upscaler="None"))[0]
    np.testing.assert_array_equal(np.asarray(same), np.asarray(plain))
    assert same.params.hires == HiresFix(upscaler="None")


def test_hires_output_has_the_target_size_and_is_not_a_plain_upscale(generator: sdcpp.Generator,
                                                                       esrgan_dir: Path) -> None:
    base = generator.generate("a lighthouse", **SMALL)[0]
    results = {}
    for hires in (HiresFix(scale=2), HiresFix(width=128, height=128, model=esrgan_dir / "x4.safetensors")):
        image = generator.generate("a lighthouse", **SMALL, hires=hires)[0]
        assert image.size == (128, 128) and image.params.hires == hires
        out = np.asarray(image, dtype=np.int16)
        for resample in (Image.NEAREST, Image.BICUBIC, Image.LANCZOS):
            plain = np.asarray(base.resize((128, 128), resample), dtype=np.int16)
            assert np.abs(out - plain).mean() > 10  # measured about 60: sampled again, not only enlarged
        results[hires.upscaler] = out
    # The ESRGAN model's enlargement is not the latent one's (a missing model would fail, not fall back).
    assert np.abs(results[HiresUpscaler.LATENT] - results[HiresUpscaler.MODEL]).mean() > 10


def test_the_upscaler_the_second_passs_steps_and_its_strength_change_the_image(generator: sdcpp.Generator) -> None:
    def hires(**kwargs) -> np.ndarray:
        image = generator.generate("a lighthouse", **SMALL, hires=HiresFix(**{"steps": 2, **kwargs}))[0]
        assert image.size == (128, 128)
        return np.asarray(image, dtype=np.int16)

    latent = hires()
    for other in (dict(upscaler="Lanczos"), dict(denoising_strength=0.3), dict(steps=3)):
        # Mean change against the Latent upscaler's image: 68, 48 and 41 levels measured.
        assert np.abs(hires(**other) - latent).mean() > 20, other
