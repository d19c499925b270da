"""Z-Image Turbo from the files people download (tests/models_z_image.py): the transformer at its full,
fixed size as q4_0 GGUF (3.46 GB), Qwen3-4B as q4_0 GGUF, Flux's VAE. Detected by the engine and by
``sdcpp.inspect``, it draws a 64x64 image with the family's defaults that the prompt steers and the seed
fixes. Peak memory 4.2 GB, 6.8 GB with the diffusers comparison; all slow (docs/z-image.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp._core import _testing

from .conftest import needs_reference
from .models_z_image import z_image_files  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow  # a 3.5 GB transformer that takes seconds per evaluation on two cores

TINY = dict(width=64, height=64, steps=2)


@pytest.fixture(scope="module")
def z_image(z_image_files: dict[str, Path]) -> sdcpp.Generator:
    with sdcpp.Generator(**z_image_files, device="cpu") as gen:
        yield gen


def test_inspect_and_the_engine_detect_z_image(z_image: sdcpp.Generator, z_image_files: dict[str, Path]) -> None:
    info = sdcpp.inspect(**z_image_files)
    assert (info.family, z_image.family) == ("Z-Image", "Z-Image")
    assert set(info.components) == {"diffusion_model", "llm", "vae"} and info.missing == []
    assert info.parameters > 6e9 and "q4_0" in sdcpp.inspect(z_image_files["diffusion_model"]).dtypes


def test_defaults_are_the_familys(z_image: sdcpp.Generator) -> None:
    # docs/z_image.md runs Turbo at --cfg-scale 1.0; the flow shift, sampler and scheduler are the engine's.
    defaults = z_image.defaults
    assert (defaults["width"], defaults["height"], defaults["steps"]) == (1024, 1024, 20)
    assert (defaults["cfg_scale"], defaults["guidance"], defaults["flow_shift"]) == (1.0, None, 3.0)
    assert (defaults["sampler"], defaults["scheduler"]) == (sdcpp.Sampler.EULER, sdcpp.Scheduler.DISCRETE)


def test_makes_an_image_its_prompt_steers_and_its_seed_fixes(z_image: sdcpp.Generator) -> None:
    # Three images of two steps at cfg 1: one transformer evaluation a step, the most costly part of the file.
    first, again, other = (z_image.generate(prompt, seed=1, **TINY, **settings)[0] for prompt, settings in (
        ("a lighthouse at dusk", {}),
        ("a lighthouse at dusk", {"cfg_scale": 1.0, "flow_shift": 3.0}),  # the defaults, given
        ("a red barn in snow", {}),
    ))
    assert first.size == (64, 64)
    assert (first.params.cfg_scale, first.params.flow_shift, first.params.sampler) == (1.0, 3.0, "euler")
    image, same, changed = (np.asarray(r, dtype=np.float64) for r in (first, again, other))
    assert image.std() > 5, "a random-weight model still draws something other than a flat image"
    np.testing.assert_array_equal(same, image)  # the seed fixes the pixels; the defaults are the values used
    assert np.abs(changed - image).mean() > 1  # Qwen3 is read: another prompt gives another image


def test_without_the_llm_names_it(z_image_files: dict[str, Path]) -> None:
    # Headers only: the set is refused before the engine reads a weight.
    without = {k: v for k, v in z_image_files.items() if k != "llm"}
    message = r"^llm: Z-Image needs this component, .*\n  llm=PATH: the language-model"
    with pytest.raises(sdcpp.ModelLoadError, match=message):
        sdcpp.Generator(**without, device="cpu")


@needs_reference
def test_transformer_call_matches_diffusers(z_image: sdcpp.Generator, measured) -> None:
    """One transformer evaluation against diffusers' ZImageTransformer2DModel with one layer and one
    refiner block of each kind (2.2 GB in float32): the file's other blocks add nothing to their input
    (tests/models_z_image.py), so the engine's 34 blocks compute what these 3 do."""
    import torch
    from diffusers import ZImageTransformer2DModel

    from .models_z_image import CAPTION_WIDTH, dit_weights
    from .reference import check_denoiser_call

    with torch.device("meta"):  # no random initialisation of weights that are replaced at once
        dit = ZImageTransformer2DModel(n_layers=1, n_refiner_layers=1)
    dit.load_state_dict({k: torch.from_numpy(v) for k, v in dit_weights().items()}, assign=True)
    rng = np.random.default_rng(5)
    # 4 x 6 patches and 12 caption tokens: both padded to 32 tokens with the learned pad tokens.
    latent = rng.standard_normal((16, 8, 12), dtype=np.float32)
    context = rng.standard_normal((12, CAPTION_WIDTH), dtype=np.float32)

    def theirs(t: float) -> np.ndarray:
        with torch.no_grad():
            out = dit([torch.from_numpy(latent)[:, None]], torch.tensor([t / 1000]), [torch.from_numpy(context)],
                      return_dict=False)[0]
        return -out[0][:, 0].numpy()  # the engine's model returns the negated velocity (z_image.hpp)

    ours = _testing.diffusion_model(z_image._ctx, latent, 621.0, context)  # the engine's timestep is diffusers' x 1000
    # 1.1e-2 measured: the engine multiplies q4_0 weights by activations it rounds to q8_0, torch in float32.
    # Rounding torch's activations the same way halves that and no more: a change of 1e-6 in the input
    # moves the rounded computation by 5e-3. What the bound tells apart, measured on diffusers' side:
    # image rotary positions one row off move the output 2.2e-2, swapped pad tokens 0.56, unit q_norm
    # weights 1.9e-2; caption positions one off only 0.9e-2, within the rounding.
    check_denoiser_call(ours, theirs, 621.0, 1.5e-2, measured, "Z-Image transformer")
