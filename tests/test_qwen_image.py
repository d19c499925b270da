"""Qwen-Image from the files people download (tests/models_qwen_image.py): the transformer and the
Qwen2.5-VL text encoder as q4_0 GGUF, the Wan 2.1 VAE. Detected by the engine and by ``sdcpp.inspect``,
it draws a 64x64 image with the family's defaults that the prompt steers and the seed fixes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp._core import _testing

from .conftest import needs_reference

TINY = dict(width=64, height=64, steps=2)


@pytest.fixture(scope="module")
def qwen(qwen_image_files: dict[str, Path]) -> sdcpp.Generator:
    with sdcpp.Generator(**qwen_image_files, device="cpu") as gen:
        yield gen


def pixels(gen: sdcpp.Generator, prompt: str, **settings) -> np.ndarray:
    return np.asarray(gen.generate(prompt, seed=1, **TINY, **settings)[0], dtype=np.float64)


def test_inspect_and_the_engine_detect_qwen_image(qwen: sdcpp.Generator, qwen_image_files: dict[str, Path]) -> None:
    info = sdcpp.inspect(**qwen_image_files)
    assert (info.family, qwen.family) == ("Qwen Image", "Qwen Image")
    assert set(info.components) == {"diffusion_model", "llm", "vae"} and info.missing == []
    assert "q4_0" in sdcpp.inspect(qwen_image_files["llm"]).dtypes


def test_depths_are_read_from_the_files(qwen_image_files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="sdcpp"), sdcpp.Generator(**qwen_image_files, device="cpu"):
        pass
    assert "qwen_image_params.num_layers: 1" in caplog.text
    assert "llm: num_layers = 2, vocab_size = 152064, hidden_size = 3584, intermediate_size = 2048" in caplog.text


def test_defaults_are_the_familys(qwen: sdcpp.Generator) -> None:
    assert dict(qwen.defaults) == {
        "width": 1024, "height": 1024, "steps": 20, "cfg_scale": 2.5, "guidance": None, "flow_shift": 3.0,
        "sampler": sdcpp.Sampler.EULER, "scheduler": sdcpp.Scheduler.DISCRETE,
    }


def test_makes_an_image_its_prompt_steers_and_its_seed_fixes(qwen: sdcpp.Generator) -> None:
    result = qwen.generate("a lighthouse at dusk", seed=1, **TINY)[0]
    assert result.size == (64, 64)
    assert (result.params.cfg_scale, result.params.flow_shift, result.params.sampler) == (2.5, 3.0, "euler")
    image = np.asarray(result, dtype=np.float64)
    assert image.std() > 5, "a random-weight model still draws something other than a flat image"
    # The defaults are the values used: given explicitly, they give the same pixels.
    np.testing.assert_array_equal(pixels(qwen, "a lighthouse at dusk", cfg_scale=2.5, flow_shift=3.0), image)
    # Qwen2.5-VL is read: another prompt gives another image.
    assert np.abs(pixels(qwen, "a red barn in snow") - image).mean() > 1
    # ... and the default guidance was applied (the flow shift's effect on a 2-step image of random
    # weights is below a pixel level: the velocity hardly depends on the timestep).
    assert np.abs(pixels(qwen, "a lighthouse at dusk", cfg_scale=1.0) - image).mean() > 1


def test_without_the_llm_names_it(qwen_image_files: dict[str, Path]) -> None:
    # Headers only: the set is refused before the engine reads a weight.
    without = {k: v for k, v in qwen_image_files.items() if k != "llm"}
    with pytest.raises(sdcpp.ModelLoadError, match=r"^llm: Qwen Image needs this component, .*\n  llm=PATH: the language-model"):
        sdcpp.Generator(**without, device="cpu")


@needs_reference
@pytest.mark.slow
def test_transformer_call_matches_diffusers(qwen: sdcpp.Generator, measured) -> None:
    """One transformer evaluation against diffusers' QwenImageTransformer2DModel on the q4_0 weights as
    the engine decodes them (1.4 GB in float32). Without patch 0037 the text tokens sat at other rotary
    positions than diffusers' (and ComfyUI's): 2.3e-2 relative error."""
    import torch
    from diffusers import QwenImageTransformer2DModel
    from diffusers.models.transformers.transformer_qwenimage import QwenEmbedRope

    from .models_qwen_image import LLM_WIDTH, dit_weights
    from .reference import check_denoiser_call

    with torch.device("meta"):  # no random initialisation of weights that are replaced at once
        dit = QwenImageTransformer2DModel(num_layers=1)
    dit.load_state_dict({k: torch.from_numpy(v) for k, v in dit_weights().items()}, assign=True)
    dit.pos_embed = QwenEmbedRope(theta=10000, axes_dim=[16, 56, 56], scale_rope=True)  # not a weight: its tables
    rng = np.random.default_rng(5)
    c, h, w = 16, 8, 12  # a latent of 4 x 6 patches: the text's positions depend on the larger side
    latent = rng.standard_normal((c, h, w), dtype=np.float32)
    context = rng.standard_normal((12, LLM_WIDTH), dtype=np.float32)
    # diffusers takes the latent as a sequence of 2x2 patches (the pipeline's _pack_latents), channels first.
    packed = latent.reshape(c, h // 2, 2, w // 2, 2).transpose(1, 3, 0, 2, 4).reshape(1, -1, 4 * c)

    def theirs(t: float) -> np.ndarray:
        with torch.no_grad():
            out = dit(torch.from_numpy(packed), torch.from_numpy(context)[None], timestep=torch.tensor([t / 1000]),
                      img_shapes=[[(1, h // 2, w // 2)]], return_dict=False)[0]
        return out.numpy().reshape(h // 2, w // 2, c, 2, 2).transpose(2, 0, 3, 1, 4).reshape(c, h, w)

    ours = _testing.diffusion_model(qwen._ctx, latent, 621.0, context)  # the engine's timestep is diffusers' x 1000
    # 8.8e-3 measured with 4 x 4 patches: the engine multiplies q4_0 weights by activations it rounds to
    # q8_0 (ggml's CPU kernels), torch in float32; with float16 weights the two agree to 6e-4.
    check_denoiser_call(ours, theirs, 621.0, 1.5e-2, measured, "Qwen-Image transformer")
