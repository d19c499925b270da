"""Same weights, same noise, same image: sdcpp against HuggingFace diffusers, stage by stage.

Both sides load the float32 random-weight SD 1.5 diffusers folder and run on the CPU. Each stage
reports the relative error ||sdcpp - diffusers|| / ||diffusers|| against a bound (in its assertion
message, and in the "sdcpp against diffusers" table at the end of the test report); README "Correctness" lists the bounds, the measured
errors and why each bound is what it is. Every bound is also checked to be tight: the nearest wrong
input (another seed, the other clip_skip, a timestep one step off) must miss it by far.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import sdcpp

# torch's Tensor.__array__ predates numpy 2's copy keyword; diffusers' schedulers trip over it.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

if not os.environ.get("CI"):  # CI installs .[parity]: there a missing reference fails, it is not skipped
    pytest.importorskip("diffusers", reason="the parity tests need the reference: pip install '.[parity]'")

import torch  # noqa: E402

from .reference import BOS, EOS, Reference, bpe_ids, chunked  # noqa: E402

# Bounds, each about 4x the error measured on the CI machine (README "Correctness").
TEXT_ENCODER_BOUND = 1e-3
UNET_BOUND = 5e-3
VAE_BOUND = 2e-3
NOISE_MAX_ABS = 1e-6
SIGMAS_BOUND = 1e-5
IMAGE_MIN_PSNR = 45.0
IMAGE_MAX_ABS = 4

SIZE = 128  # pixels; a 16 x 16 latent keeps every UNet level above 1 x 1 and the tests fast


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def engine(sd15_folder_f32: Path) -> sdcpp.Generator:
    # On the CPU whatever the build, like the reference; rng="cpu" is the engine's torch-CPU generator.
    with sdcpp.Generator(sd15_folder_f32, device="cpu", rng="cpu") as gen:
        yield gen


@pytest.fixture(scope="module")
def reference(sd15_folder_f32: Path) -> Reference:
    return Reference(sd15_folder_f32)


# --- 1. tokenizer ------------------------------------------------------------------------------------

PROMPTS = [
    "a photograph of an astronaut riding a horse",
    "Hello, World! It's 5:30pm -- isn't it? a/b_c#d; 100% & \"quotes\" ~tilde~ @user <tag> x=y+z*2",
    "  Mixed   CASE\twith\nwhitespace  ",
    "numbers 1234567 and 3.14159, version 2.0b",
    "日本の風景",
    "emoji 🚀🔥 rocket",
    "",
]


@pytest.mark.parametrize("prompt", PROMPTS, ids=range(len(PROMPTS)))
def test_token_ids_are_clips(engine: sdcpp.Generator, prompt: str) -> None:
    tokens = engine.tokenize(prompt)
    assert tokens.ids == chunked(bpe_ids(prompt))
    assert tokens.weights == [1.0] * len(tokens.ids)


# The engine lowercases ASCII bytes only (std::tolower on each byte), and its word pattern is a
# std::regex whose [[:alpha:]] matches no byte of a UTF-8 multi-byte letter, so every non-ASCII
# letter is taken for punctuation: "café" is cut into "caf" + "é", "Ü" stays upper case, and "景,"
# is one piece. CLIP's tokenizer lowercases all of Unicode and treats every letter (\p{L}) as a
# letter. A run of CJK characters or emoji between spaces agrees only because both sides keep it in
# one piece. Strict: fixing the engine's tokenizer makes these pass, and must.
@pytest.mark.xfail(strict=True, reason="the engine's tokenizer takes non-ASCII letters for punctuation")
@pytest.mark.parametrize("prompt", ["café crème brûlée", "ÜBER Straße", "naïve résumé", "日本の風景, 山と川"])
def test_non_ascii_letters_tokenize_as_in_clip(engine: sdcpp.Generator, prompt: str) -> None:
    assert engine.tokenize(prompt).ids == chunked(bpe_ids(prompt))


# (prompt, its pieces with their weights), as AUTOMATIC1111's web UI parses emphasis.
EMPHASIS = [
    ("a (red:1.3) barn", [("a ", 1.0), ("red", 1.3), (" barn", 1.0)]),
    ("((snow)) and [fog]", [("snow", 1.1 * 1.1), (" and ", 1.0), ("fog", 1 / 1.1)]),
    ("(a cat:0.5), (dog)", [("a cat", 0.5), (", ", 1.0), ("dog", 1.1)]),
    (r"\(left bracket only", [("(left bracket only", 1.0)]),
]


@pytest.mark.parametrize("prompt, pieces", EMPHASIS, ids=[p for p, _ in EMPHASIS])
def test_emphasis_becomes_token_weights(engine: sdcpp.Generator, prompt: str, pieces: list) -> None:
    ids: list[int] = []
    weights: list[float] = []
    for text, weight in pieces:
        piece = bpe_ids(text)
        ids += piece
        weights += [weight] * len(piece)
    tokens = engine.tokenize(prompt)
    assert tokens.ids == chunked(ids)
    expected = [1.0, *weights, 1.0]
    np.testing.assert_allclose(tokens.weights[: len(expected)], expected, rtol=1e-6)
    assert tokens.weights[len(expected) :] == [1.0] * (77 - len(expected))


# AUTOMATIC1111 drops the backslash of every escape (\( \) \[ \] \\); the engine's port of its
# parser (parse_prompt_attention in util.cpp) only that of "\(", so "\)", "\[" and "\]" reach the
# tokenizer with their backslash. Strict: fixing the engine's parser makes these pass, and must.
@pytest.mark.xfail(strict=True, reason=r"the engine keeps the backslash of the escapes \) \[ \]")
@pytest.mark.parametrize("prompt, literal", [(r"\(literal\) parens", "(literal) parens"), (r"a \[b\] c", "a [b] c")])
def test_escaped_brackets_are_literal(engine: sdcpp.Generator, prompt: str, literal: str) -> None:
    assert engine.tokenize(prompt).ids == chunked(bpe_ids(literal))


LONG_PROMPT = ", ".join(f"detail {i}" for i in range(60))  # 229 tokens: 4 chunks


def test_long_prompt_is_cut_into_chunks_of_75(engine: sdcpp.Generator) -> None:
    ids = bpe_ids(LONG_PROMPT)
    assert len(ids) == 229
    tokens = engine.tokenize(LONG_PROMPT)
    assert tokens.ids == chunked(ids)
    assert len(tokens.ids) == 4 * 77 and tokens.ids[77] == BOS and tokens.ids[76] == EOS


# --- 2. text encoder ---------------------------------------------------------------------------------


@pytest.mark.parametrize("clip_skip", [1, 2])
def test_text_encoder_hidden_states(engine, reference, clip_skip, measured) -> None:
    tokens = engine.tokenize("a photograph of an astronaut riding a horse")
    ours = engine._ctx.encode_tokens(tokens.ids, tokens.weights, clip_skip=clip_skip)
    theirs = reference.encode(tokens.ids, clip_skip=clip_skip)
    assert ours.shape == theirs.shape == (77, 768)
    error = relative_error(ours, theirs)
    measured[f"text encoder, clip_skip {clip_skip}"] = f"relative error {error:.1e} (bound {TEXT_ENCODER_BOUND:.0e})"
    assert error < TEXT_ENCODER_BOUND, f"text encoder (clip_skip {clip_skip}): relative error {error:.2e}"
    other_layer = reference.encode(tokens.ids, clip_skip=3 - clip_skip)
    assert relative_error(ours, other_layer) > 100 * TEXT_ENCODER_BOUND


def test_emphasis_scales_hidden_states_keeping_their_mean(engine, reference) -> None:
    tokens = engine.tokenize("a (red:1.3) barn in ((snow)), [fog]")
    ours = engine._ctx.encode_tokens(tokens.ids, tokens.weights)
    # AUTOMATIC1111's rule: scale each token's hidden state by its weight, then restore the mean.
    plain = reference.encode(tokens.ids)
    weighted = plain * np.asarray(tokens.weights, np.float32)[:, None]
    theirs = weighted * (plain.mean() / weighted.mean())
    assert relative_error(ours, theirs) < TEXT_ENCODER_BOUND
    assert relative_error(ours, plain) > 10 * TEXT_ENCODER_BOUND


def test_long_prompt_conditioning_is_its_chunks_encoded(engine, reference) -> None:
    tokens = engine.tokenize(LONG_PROMPT)
    ours = engine._ctx.encode_tokens(tokens.ids, tokens.weights)
    theirs = np.concatenate([reference.encode(tokens.ids[i : i + 77]) for i in range(0, len(tokens.ids), 77)])
    assert ours.shape == theirs.shape == (4 * 77, 768)
    assert relative_error(ours, theirs) < TEXT_ENCODER_BOUND


# --- 3. UNet ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("timestep", [999.0, 621.5])
def test_unet_prediction(engine, reference, timestep, measured) -> None:
    rng = np.random.default_rng(1)
    latent = rng.standard_normal((4, SIZE // 8, SIZE // 8), dtype=np.float32)
    context = reference.encode(engine.tokenize("a lighthouse at dusk").ids)
    ours = engine._ctx.diffusion_model(latent, timestep, context)
    theirs = reference.unet_eps(latent, timestep, context)
    assert ours.shape == theirs.shape == latent.shape
    error = relative_error(ours, theirs)
    measured[f"UNet, t={timestep}"] = f"relative error {error:.1e} (bound {UNET_BOUND:.0e})"
    assert error < UNET_BOUND, f"UNet at t={timestep}: relative error {error:.2e}"
    one_step_off = reference.unet_eps(latent, timestep - 1, context)
    assert relative_error(ours, one_step_off) > 4 * UNET_BOUND


# --- 4. VAE -----------------------------------------------------------------------------------------


def test_vae_decode(engine, reference, measured) -> None:
    latent = np.random.default_rng(2).standard_normal((4, SIZE // 8, SIZE // 8), dtype=np.float32)
    ours = engine._ctx.decode_latent(latent)
    theirs = reference.decode(latent)
    assert ours.shape == theirs.shape == (3, SIZE, SIZE)
    # Most pixels must be inside (0, 1), or clamping would hide the differences.
    assert ((theirs > 0) & (theirs < 1)).mean() > 0.8
    error = relative_error(ours, theirs)
    measured["VAE decode"] = f"relative error {error:.1e} (bound {VAE_BOUND:.0e})"
    assert error < VAE_BOUND, f"VAE decode: relative error {error:.2e}"


# --- 5. noise, schedule, whole pipeline ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 42, 2**40 + 3])
def test_cpu_rng_noise_is_torch_randn(engine, seed, measured) -> None:
    ours = engine.noise(seed, width=SIZE, height=SIZE)
    theirs = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=torch.Generator("cpu").manual_seed(seed)).numpy()
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    # Not bit for bit: torch's vectorised Box-Muller uses SLEEF's log/sin/cos, the engine the C
    # library's, which differ in the last bit or two.
    worst = float(np.abs(ours - theirs).max())
    measured[f"noise, seed {seed}"] = f"max abs difference {worst:.1e} (bound {NOISE_MAX_ABS:.0e})"
    assert worst <= NOISE_MAX_ABS, f"noise for seed {seed}: max abs difference {worst:.2e}"
    assert np.abs(ours - engine.noise(seed + 1, width=SIZE, height=SIZE)).max() > 1


@pytest.mark.parametrize("steps", [2, 4, 10, 20, 25])
def test_discrete_schedule_is_euler_discrete_linspace(engine, reference, steps, measured) -> None:
    ours = engine.sigmas(steps, sampler="euler", scheduler="discrete")
    theirs = reference.sigmas(steps)
    assert ours.shape == theirs.shape == (steps + 1,) and ours[-1] == 0
    # Exact timesteps when 999 / (steps - 1) is a whole number; otherwise the engine interpolates
    # log sigma between timesteps (as k-diffusion does) and diffusers sigma itself.
    error = relative_error(ours, theirs)
    measured[f"sigmas, {steps} steps"] = f"relative error {error:.1e} (bound {SIGMAS_BOUND:.0e})"
    assert error < SIGMAS_BOUND, f"sigmas for {steps} steps: relative error {error:.2e}"


def test_one_step_schedule_starts_at_sigma_max(engine, reference) -> None:
    # diffusers' linspace of one timestep is t=0 (sigma_min); the engine starts every schedule at
    # t=999. A documented disagreement, not an error: one step from sigma_min denoises nothing.
    ours = engine.sigmas(1, sampler="euler", scheduler="discrete")
    np.testing.assert_allclose(ours, [reference.sigmas(2)[0], 0], rtol=SIGMAS_BOUND)


@pytest.mark.slow
def test_euler_image_matches_diffusers_pipeline(engine, reference, measured) -> None:
    prompt, settings = "a lighthouse at dusk", dict(steps=4, cfg_scale=7.0, width=SIZE, height=SIZE)
    ours = np.asarray(engine.generate(prompt, sampler="euler", scheduler="discrete", seed=42, **settings)[0])
    theirs = reference.generate(prompt, seed=42, **settings) * 255
    assert ours.shape == theirs.shape == (SIZE, SIZE, 3)
    assert theirs.std() > 20, "a flat image would agree too easily"
    worst = float(np.abs(ours - np.round(theirs)).max())
    measured["Euler image"] = (
        f"PSNR {psnr(ours, theirs):.1f} dB, max abs {worst:.0f} levels "
        f"(bounds {IMAGE_MIN_PSNR:.0f} dB, {IMAGE_MAX_ABS} levels)"
    )
    assert psnr(ours, theirs) >= IMAGE_MIN_PSNR and worst <= IMAGE_MAX_ABS, (
        f"Euler image: PSNR {psnr(ours, theirs):.1f} dB, max abs difference {worst} levels"
    )
    other_seed = np.asarray(engine.generate(prompt, sampler="euler", scheduler="discrete", seed=43, **settings)[0])
    assert psnr(other_seed, theirs) < IMAGE_MIN_PSNR / 2


def psnr(image: np.ndarray, reference_image: np.ndarray) -> float:
    mse = np.mean((np.asarray(image, np.float64) - reference_image) ** 2)
    return float(10 * np.log10(255**2 / mse))
