"""Classifier-free guidance as one batch-2 diffusion-model evaluation per step
(third_party/patches/0030-batched-cfg.patch, docs/batched-cfg.md): the same images as two batch-1
evaluations, and the switch really changes how many evaluations a generation takes."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp.devices import resolve_device

SHORT = "a lighthouse at dusk"
# 24 x 4 = 96 tokens: two chunks of 77, against one for the empty negative prompt.
LONG = "a lighthouse on a cliff at dusk, " * 12
STEPS = 4
DEVICE = os.environ.get("SDCPP_TEST_DEVICE", "auto")  # as tests/conftest.py's generator


@pytest.fixture(scope="module")
def batched(sd15_file: Path) -> Iterator[sdcpp.Generator]:
    with sdcpp.Generator(sd15_file, device=DEVICE, name="batched") as gen:
        yield gen


@pytest.fixture(scope="module")
def separate(sd15_file: Path) -> Iterator[sdcpp.Generator]:
    with sdcpp.Generator(sd15_file, device=DEVICE, batched_cfg=False, name="separate") as gen:
        yield gen


def pixels(gen: sdcpp.Generator, prompt: str, size: int, negative: str = "", cfg_scale: float = 7.0) -> np.ndarray:
    image = gen.generate(prompt, negative, width=size, height=size, steps=STEPS, seed=42, cfg_scale=cfg_scale)[0]
    return np.asarray(image).astype(np.int16)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def assert_rounding_apart(a: np.ndarray, b: np.ndarray) -> None:
    """Two correct computations of one image: on the CPU, 55-57 dB apart (flash attention on against
    off, or batched against separate) on AVX-512, 54 dB and 4 levels on an AVX2-only CPU (SDXS-0.9,
    2026-12-01: ggml takes other f16 kernels there); on CUDA, whose kernels round in f16, 44-49 dB and
    at most 10 levels for both pairs alike (benchmarks/results/rounding-cuda.md). A real error, such
    as cond and uncond swapped, is about 10 dB."""
    low, worst = (50, 6) if resolve_device(DEVICE) == "CPU" else (40, 16)
    assert psnr(a, b) > low and np.abs(a - b).max() <= worst, (psnr(a, b), np.abs(a - b).max())


def sampling_log(gen: sdcpp.Generator, caplog: pytest.LogCaptureFixture, **kwargs) -> str:
    """The engine's log lines of one small generation."""
    caplog.clear()
    with caplog.at_level("INFO", logger="sdcpp"):
        pixels(gen, size=64, **kwargs)
    return "\n".join(r.getMessage() for r in caplog.records if r.name == gen.logger.name)


def evaluations(log: str) -> int:
    found = re.search(rf"(\d+) diffusion-model evaluations in {STEPS} steps", log)
    assert found, f"no evaluation count in the log:\n{log}"
    return int(found.group(1))


def test_long_prompt_takes_two_chunks_and_empty_negative_one(batched: sdcpp.Generator) -> None:
    # The padding case below needs contexts of different lengths.
    assert len(batched.tokenize(LONG).ids) == 2 * 77
    assert len(batched.tokenize("").ids) == 77


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("prompt", [SHORT, LONG], ids=["short", "long"])
def test_batched_and_separate_images_agree(
    batched: sdcpp.Generator, separate: sdcpp.Generator, prompt: str, size: int
) -> None:
    a = pixels(batched, prompt, size)
    b = pixels(separate, prompt, size)
    assert a.std() > 1, "a constant image means the pipeline produced nothing"
    # Rounding apart, the images are the same (for the long prompt, the empty negative's context is
    # repeated to two chunks, which attention weighs exactly as one). Rounding does differ: ggml's CPU
    # matrix-vector product (the time embedding's layers at batch 1) is not the kernel it uses for
    # two columns, and 4 steps of a random-weight UNet at cfg 7 amplify that to 1-2 levels on some
    # pixels (measured: PSNR 55-57 dB, as flash attention on against off).
    assert_rounding_apart(a, b)
    # Pairing the predictions wrongly (cond and uncond swapped) is far from that: about 10 dB.
    swapped = pixels(separate, "", size, negative=prompt)
    assert psnr(a, swapped) < 25


def test_the_switch_sets_the_number_of_evaluations(
    batched: sdcpp.Generator, separate: sdcpp.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    log = sampling_log(batched, caplog, prompt=SHORT)
    assert "one batch-2 evaluation per step" in log
    assert evaluations(log) == STEPS
    log = sampling_log(separate, caplog, prompt=SHORT)
    assert "two evaluations per step (batched_cfg is off)" in log
    assert evaluations(log) == 2 * STEPS


def test_without_guidance_there_is_one_evaluation_per_step(
    batched: sdcpp.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    log = sampling_log(batched, caplog, prompt=SHORT, cfg_scale=1.0)
    assert "classifier-free guidance" not in log
    assert evaluations(log) == STEPS


def test_contexts_that_do_not_tile_run_separately(batched: sdcpp.Generator, caplog: pytest.LogCaptureFixture) -> None:
    # 3 chunks against 2: neither repeats into the other, so the engine falls back and says why.
    assert len(batched.tokenize(LONG * 2).ids) == 3 * 77
    log = sampling_log(batched, caplog, prompt=LONG * 2, negative=LONG)
    assert "two evaluations per step (context lengths 231 and 154 tokens" in log
    assert evaluations(log) == 2 * STEPS


def test_batched_with_flash_attention_is_separate_with_it(sd15_file: Path) -> None:
    # ggml's flash attention returns every head of both samples in one [d_head, heads * 2, tokens]
    # tensor; the engine's view of it kept the first sample's heads only, and the graph's next reshape
    # stopped the process (GGML_ASSERT, first seen on CUDA where flash attention is the default).
    with sdcpp.Generator(sd15_file, device=DEVICE, flash_attn=True, name="batched-fa") as gen:
        a = pixels(gen, SHORT, 64)
    with sdcpp.Generator(sd15_file, device=DEVICE, flash_attn=True, batched_cfg=False, name="separate-fa") as gen:
        b = pixels(gen, SHORT, 64)
    assert a.std() > 1
    assert_rounding_apart(a, b)
