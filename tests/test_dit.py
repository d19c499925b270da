"""Diffusion transformers from the component files people download (tests/models_dit.py): each is
detected as its family by the engine and by ``sdcpp.inspect``, and makes an image its text steers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sdcpp

# cfg 1: one evaluation per step (Flux dev is guidance-distilled; for SD3 it halves the test's time).
TINY = dict(width=64, height=64, steps=2, cfg_scale=1.0)


def pixels(gen: sdcpp.Generator, prompt: str, seed: int) -> np.ndarray:
    return np.asarray(gen.generate(prompt, seed=seed, **TINY)[0], dtype=np.float64)


def check_family_and_image(files: dict[str, Path], family: str) -> None:
    info = sdcpp.inspect(**files)
    assert info.family == family
    assert set(files) <= set(info.components)
    with sdcpp.Generator(**files, device="cpu") as gen:
        assert gen.family == family
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
    check_family_and_image(flux_gguf_files, "Flux")


def test_flux_reads_its_depth_from_the_file(flux_files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="sdcpp"), sdcpp.Generator(**flux_files, device="cpu"):
        pass
    assert "flux: depth = 2, depth_single_blocks = 2, guidance_embed = true" in caplog.text


def test_sd3_from_a_gguf_transformer_and_component_files(sd3_files: dict[str, Path]) -> None:
    check_family_and_image(sd3_files, "SD3.x")
