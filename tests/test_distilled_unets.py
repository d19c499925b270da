"""Distilled UNets (tests/models_distilled.py): BK-SDM tiny (SD 1.x, SD 2.x), SDXS-512 (DreamShaper,
0.9), Segmind Vega and SSD-1B, each from the files people run.

Each is detected as its family by the engine and by ``sdcpp.inspect``, loads every tensor of the file
(no "unknown tensor" in the engine's log; one missing fails the load), and makes an image that the
prompt and the seed change. The tiny UNets' single evaluation is compared with diffusers'
``UNet2DConditionModel`` built from the same weights: SDXS-0.9's finest level attends only to the text
(``only_cross_attention``), which the engine ran on its own features misread as a 1024-wide context
(NaN output) until patch 0046.

Peak memory: about 1.8 GB for the four tiny models (one at a time), 4 GB for Vega, 5.5 GB for SSD-1B
(``slow``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp._core import _testing

from .conftest import needs_reference
from .models_distilled import FAMILIES, distilled  # noqa: F401
from .test_batched_cfg import assert_rounding_apart

SMALL = dict(width=64, height=64, steps=1)
DEVICE = os.environ.get("SDCPP_TEST_DEVICE", "auto")
SDXL_SIZED = {"SDXL (Vega)", "SDXL (SSD1B)"}
PARAMS = [pytest.param(f, id=f, marks=[pytest.mark.slow] if f in SDXL_SIZED else []) for f in FAMILIES]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def loaded(distilled: Path) -> tuple[sdcpp.Generator, list[str]]:
    """The Generator of ``distilled`` and the engine's log lines while it loaded."""
    handler, logger = _Lines(), logging.getLogger("sdcpp")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        gen = sdcpp.Generator(distilled, device=DEVICE)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    with gen:
        yield gen, handler.lines


def pixels(gen: sdcpp.Generator, prompt: str, seed: int, **kwargs) -> np.ndarray:
    return np.asarray(gen.generate(prompt, seed=seed, **SMALL, **kwargs)[0], dtype=np.float64)


@pytest.mark.parametrize("distilled", PARAMS, indirect=True)
def test_is_detected_and_loads_every_tensor(distilled: Path, loaded) -> None:
    gen, log = loaded
    family = next(f for f, (_, _, name) in FAMILIES.items() if name == distilled.name)
    assert gen.family == family == sdcpp.inspect(distilled).family
    assert not [line for line in log if "unknown tensor" in line], "every tensor of the file is the model's"
    assert sum(n for types in gen.weight_types.values() for n in types.values()) > 0


@pytest.mark.parametrize("distilled", PARAMS, indirect=True)
def test_prompt_and_seed_change_the_image(loaded) -> None:
    gen, _ = loaded
    image = pixels(gen, "a lighthouse", 1)
    assert image.shape == (64, 64, 3)
    assert image.std() > 1, "a constant image would hide a broken pipeline"
    np.testing.assert_array_equal(image, pixels(gen, "a lighthouse", 1), "same prompt and seed: same pixels")
    assert np.abs(image - pixels(gen, "a red car", 1)).mean() > 2, "the prompt must change the image"
    assert np.abs(image - pixels(gen, "a lighthouse", 2)).mean() > 2, "the seed must change the image"


@pytest.mark.parametrize("distilled", ["SDXS (09)"], indirect=True)
def test_sdxs_09_takes_cond_and_uncond_as_one_batch(distilled: Path, loaded, caplog: pytest.LogCaptureFixture) -> None:
    # Before patch 0046 its graph rewrote a tensor's shape in place, and batched CFG left it out.
    gen, _ = loaded
    with caplog.at_level("INFO", logger="sdcpp"):
        batched = pixels(gen, "a lighthouse", 3, cfg_scale=7.0)  # its default, 1, needs no unconditional
    assert "one batch-2 evaluation per step" in "\n".join(r.getMessage() for r in caplog.records)
    with sdcpp.Generator(distilled, device=DEVICE, batched_cfg=False) as separate:
        assert_rounding_apart(batched, pixels(separate, "a lighthouse", 3, cfg_scale=7.0))


@pytest.mark.parametrize("distilled", ["SDXS (512-DS)"], indirect=True)
def test_sdxs_defaults_to_one_step_without_guidance(loaded) -> None:
    gen, _ = loaded
    assert (gen.defaults["steps"], gen.defaults["cfg_scale"], gen.defaults["width"]) == (1, 1.0, 512)
    assert gen.with_defaults(sdcpp.GenerationParams("x")).steps == 1


# diffusers' UNet2DConditionModel arguments that differ between the tiny UNets (the released configs:
# no middle block, one resnet per level down; SD 2.x: 64-channel heads, Linear projections).
TINY = {
    "SD 1.x Tiny UNet": dict(cross_attention_dim=768, attention_head_dim=8, use_linear_projection=False),
    "SDXS (512-DS)": dict(cross_attention_dim=768, attention_head_dim=8, use_linear_projection=False,
                          down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                          up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]),
    "SD 2.x Tiny UNet": dict(cross_attention_dim=1024, attention_head_dim=[5, 10, 20], use_linear_projection=True),
    "SDXS (09)": dict(cross_attention_dim=1024, attention_head_dim=[5, 10, 20], use_linear_projection=True,
                      only_cross_attention=[True, False, False]),
}


@needs_reference
@pytest.mark.slow  # torch's float32 copy of the UNet: 4.6 GB at the peak
@pytest.mark.parametrize("distilled", TINY, indirect=True)
def test_unet_call_matches_diffusers(distilled: Path, loaded) -> None:
    import torch
    from diffusers import UNet2DConditionModel

    from . import models

    gen, _ = loaded
    components = FAMILIES[gen.family][0]
    config = dict(
        block_out_channels=[320, 640, 1280], layers_per_block=1, mid_block_type=None,
        down_block_types=["CrossAttnDownBlock2D"] * 3, up_block_types=["CrossAttnUpBlock2D"] * 3,
    )
    unet = UNet2DConditionModel(**{**config, **TINY[gen.family]}).eval()
    state = models._tensors(components, "diffusers-unet", np.float16, 0)
    unet.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in state.items()}, strict=True)
    rng = np.random.default_rng(5)
    latent = rng.standard_normal((4, 16, 16), dtype=np.float32)
    context = rng.standard_normal((77, unet.config.cross_attention_dim), dtype=np.float32)
    with torch.no_grad():
        reference = unet(torch.from_numpy(latent)[None], torch.tensor([621.0]), torch.from_numpy(context)[None])
    reference = reference.sample[0].numpy()
    ours = _testing.diffusion_model(gen._ctx, latent, 621.0, context)
    error = float(np.linalg.norm(ours - reference) / np.linalg.norm(reference))
    # 1.4e-3 to 1.6e-3 measured (the engine multiplies in float16, torch in float32), as for SD 2.x.
    assert error < 5e-3, f"relative error {error:.2e}"
