"""The LLM-conditioned families of tests/models_flux2.py from the files people download: Flux.2 klein
(Qwen3), Flux.2 dev (Mistral Small 3.2), Ovis Image (Ovis 2.5's Qwen3) and ERNIE-Image (Ministral 3 3B).
Each is detected as its family by the engine and by ``sdcpp.inspect``, reads its depths and widths from
the files, is refused without its LLM, and draws a 64x64, 2-step image with its family's defaults that
the prompt steers and the seed fixes; Flux.2 also takes a reference image, and one call of klein's
transformer agrees with diffusers'.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

import sdcpp
from sdcpp._core import _testing

from .conftest import needs_reference
from .models_flux2 import ernie_image_files, flux2_dev_files, flux2_klein_files, flux2_vae, ovis_image_files  # noqa: F401

TINY = dict(width=64, height=64, steps=2)


class Family(NamedTuple):
    name: str
    defaults: dict  # Generator.defaults, as docs/families.md lists them
    weights: str  # the type of the diffusion model's weight matrices
    logs: tuple[str, ...]  # the engine's log lines of the sizes it read from the files
    references: bool = False  # whether ref_images (in-context editing) steer it


def _defaults(steps: int, cfg_scale: float, guidance: float | None = None, flow_shift: float | None = None) -> dict:
    return {"width": 1024, "height": 1024, "steps": steps, "cfg_scale": cfg_scale, "guidance": guidance,
            "flow_shift": flow_shift, "sampler": sdcpp.Sampler.EULER, "scheduler": sdcpp.Scheduler.DISCRETE}


def _llm_log(layers: int, vocab: int) -> str:
    return f"llm: num_layers = {layers}, vocab_size = {vocab}, hidden_size = 256, intermediate_size = 512"


# No guidance: klein has no distilled-guidance embedder (guidance_embed = false), a guidance would do nothing.
KLEIN = Family("Flux.2 klein", _defaults(4, 1.0), "f16", (
    "flux: depth = 2, depth_single_blocks = 2, guidance_embed = false, context_in_dim = 768, hidden_size = 256, "
    "num_heads = 2", _llm_log(27, 151936)), references=True)
DEV = Family("Flux.2", _defaults(20, 1.0, 3.5), "q4_0", (
    "flux: depth = 1, depth_single_blocks = 48, guidance_embed = true, context_in_dim = 768, hidden_size = 128, "
    "num_heads = 1", _llm_log(30, 131072)), references=True)
OVIS = Family("Ovis Image", _defaults(20, 5.0, flow_shift=1.0), "f16", (
    "flux: depth = 2, depth_single_blocks = 2, guidance_embed = false, context_in_dim = 256, hidden_size = 256, "
    "num_heads = 2", _llm_log(2, 151936)))
# heads = 3: before patch 0052 the engine divided the default width (4096) by the head size, read first.
ERNIE = Family("Ernie Image", _defaults(20, 5.0, flow_shift=4.0), "f16", (
    "ernie_image: layers = 2, hidden_size = 384, heads = 3, ffn_hidden_size = 1152, in_channels = 128, "
    "out_channels = 128", _llm_log(26, 131072)))


def pixels(gen: sdcpp.Generator, prompt: str = "a lighthouse at dusk", **settings) -> np.ndarray:
    return np.asarray(gen.generate(prompt, seed=1, **TINY, **settings)[0], dtype=np.float64)


def check(files: dict[str, Path], family: Family, caplog: pytest.LogCaptureFixture) -> None:
    info = sdcpp.inspect(**files)
    assert info.family == family.name
    assert set(info.components) == {"diffusion_model", "llm", "vae"} and info.missing == []
    with caplog.at_level("DEBUG", logger="sdcpp"), sdcpp.Generator(**files, device="cpu") as gen:
        assert gen.family == family.name
        assert f"'diffusion': '{family.weights}'" in repr(gen)
        for line in family.logs:
            assert line in caplog.text, "the depths and widths are the files'"
        assert dict(gen.defaults) == family.defaults
        result = gen.generate("a lighthouse at dusk", seed=1, **TINY)[0]
        assert result.size == (64, 64)
        used = {k: getattr(result.params, k) for k in ("cfg_scale", "guidance", "flow_shift", "sampler")}
        assert used == {k: family.defaults[k] for k in used}, "the family's defaults are the ones used"
        image = np.asarray(result, dtype=np.float64)
        assert image.std() > 5, "a random-weight model still draws something other than a flat image"
        np.testing.assert_array_equal(pixels(gen), image, "the seed fixes the image")
        # The LLM is read: another prompt gives another image.
        assert np.abs(pixels(gen, "a red barn in snow") - image).mean() > 1
        if family.references:  # a reference's latent tokens join the image's (in-context editing)
            black = np.zeros((64, 64, 3), np.uint8)
            assert np.abs(pixels(gen, ref_images=[black]) - image).mean() > 1


def check_refused_without_llm(files: dict[str, Path], family: Family) -> None:
    # Headers only: the set is refused before the engine reads a weight.
    without = {k: v for k, v in files.items() if k != "llm"}
    with pytest.raises(sdcpp.ModelLoadError,
                       match=rf"^llm: {family.name} needs this component, .*\n  llm=PATH: the language-model"):
        sdcpp.Generator(**without, device="cpu")


# One test per family, each naming its files' fixture: a run without SDCPP_TEST_MODELS deletes a model
# after the last test that names it (tests/conftest.py), which a fixture looked up by name would escape.


def test_flux2_klein(flux2_klein_files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    check(flux2_klein_files, KLEIN, caplog)


@needs_reference
def test_flux2_klein_transformer_call_matches_diffusers(flux2_klein_files: dict[str, Path], measured) -> None:
    """One transformer evaluation against diffusers' Flux2Transformer2DModel holding the file's weights
    (klein takes no pooled vector and no guidance, so the stage call is all it needs)."""
    import torch
    from diffusers import Flux2Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers

    from .models_flux2 import klein_weights

    dit = Flux2Transformer2DModel(  # the fixture's sizes, and klein's fixed ones (flux.hpp)
        patch_size=1, in_channels=128, num_layers=2, num_single_layers=2, attention_head_dim=128,
        num_attention_heads=2, joint_attention_dim=768, mlp_ratio=3.0, axes_dims_rope=(32, 32, 32, 32),
        rope_theta=2000, guidance_embeds=False)
    weights = {k: torch.from_numpy(v) for k, v in klein_weights().items()}
    dit.load_state_dict(convert_flux2_transformer_checkpoint_to_diffusers(weights), strict=True)
    rng = np.random.default_rng(5)
    c, h, w, n = 128, 4, 6, 12
    latent = rng.standard_normal((c, h, w), dtype=np.float32)
    context = rng.standard_normal((n, 768), dtype=np.float32)
    # Tokens are the latent's pixels (patch size 1), positions (t, h, w, l): the image's on h and w, the
    # text's on l (Flux2Pipeline's _prepare_latent_ids and _prepare_text_ids).
    tokens = torch.from_numpy(latent.reshape(c, h * w).T.copy())[None]
    img_ids = torch.tensor([[0, i, j, 0] for i in range(h) for j in range(w)], dtype=torch.float32)
    txt_ids = torch.tensor([[0, 0, 0, k] for k in range(n)], dtype=torch.float32)

    def theirs(t: float) -> np.ndarray:
        with torch.no_grad():
            out = dit(tokens, torch.from_numpy(context)[None], timestep=torch.tensor([t]), img_ids=img_ids,
                      txt_ids=txt_ids, return_dict=False)[0]
        return out[0].numpy().T.reshape(c, h, w)

    with sdcpp.Generator(**flux2_klein_files, device="cpu") as gen:
        ours = _testing.diffusion_model(gen._ctx, latent, 0.621, context)  # the flow's sigma, as diffusers'
    reference = theirs(0.621)
    error = float(np.linalg.norm(ours - reference) / np.linalg.norm(reference))
    measured["Flux.2 klein transformer, t=0.621"] = f"relative error {error:.1e} (bound 5e-3)"
    assert error < 5e-3, f"relative error {error:.2e}"  # 7.0e-4 measured (float16 weights)
    assert np.linalg.norm(ours - theirs(0.611)) / np.linalg.norm(reference) > 3 * error, "another time must miss"


def test_flux2_klein_without_its_llm(flux2_klein_files: dict[str, Path]) -> None:
    check_refused_without_llm(flux2_klein_files, KLEIN)


def test_flux2_dev(flux2_dev_files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    check(flux2_dev_files, DEV, caplog)


def test_flux2_dev_without_its_llm(flux2_dev_files: dict[str, Path]) -> None:
    check_refused_without_llm(flux2_dev_files, DEV)


def test_ovis_image(ovis_image_files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    check(ovis_image_files, OVIS, caplog)


def test_ovis_image_without_its_llm(ovis_image_files: dict[str, Path]) -> None:
    check_refused_without_llm(ovis_image_files, OVIS)


def test_ernie_image(ernie_image_files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    """Fails to load without patch 0052 (a width other than the released 4096 gave the wrong head count)."""
    check(ernie_image_files, ERNIE, caplog)


def test_ernie_image_without_its_llm(ernie_image_files: dict[str, Path]) -> None:
    check_refused_without_llm(ernie_image_files, ERNIE)
