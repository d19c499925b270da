"""Same weights, same noise, same image: sdcpp against HuggingFace diffusers, stage by stage.

Both sides load the float32 random-weight SD 1.5 diffusers folder and run on the CPU. Each stage
reports the relative error ||sdcpp - diffusers|| / ||diffusers|| against a bound (in its assertion
message, and in the "sdcpp against diffusers" table at the end of the test report); docs/correctness.md lists the bounds, the measured
errors and why each bound is what it is. Every bound is also checked to be tight: the nearest wrong
input (another seed, the other clip_skip, a timestep one step off) must miss it by far.
"""

from __future__ import annotations

import os
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp._core import _testing

# torch's Tensor.__array__ predates numpy 2's copy keyword; diffusers' schedulers trip over it.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

if not os.environ.get("CI"):  # CI installs .[parity]: there a missing reference fails, it is not skipped
    pytest.importorskip("diffusers", reason="the parity tests need the reference: pip install '.[parity]'")

import torch  # noqa: E402

from .reference import BOS, EOS, Reference, bpe_ids, chunked  # noqa: E402

# Bounds, each about 4x the error measured on the CI machine (docs/correctness.md).
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
# The tokenizer needs a loaded model but none of its weights: these tests take the shared float16
# `generator`, not the 4 GB float32 `engine`, so `-k token` runs without the parity models.

PROMPTS = [
    "a photograph of an astronaut riding a horse",
    "Hello, World! It's 5:30pm -- isn't it? a/b_c#d; 100% & \"quotes\" ~tilde~ @user <tag> x=y+z*2",
    "  Mixed   CASE\twith\nwhitespace  ",
    "numbers 1234567 and 3.14159, version 2.0b",
    "it's THEY'RE we'LL i'd'm 'sun",
    "",
]

# CLIP's tokenizer normalizes with NFC, collapses Unicode white space, lowercases all of Unicode code
# point by code point, and splits at \p{L}+, \p{N} and runs of anything else. Before engine patch
# 0015 the engine lowercased ASCII bytes only and its std::regex took every byte of a non-ASCII letter
# for punctuation ("café" became "caf" + "é", "景," one piece).
UNICODE_PROMPTS = {
    "accented latin": "café crème brûlée, naïve résumé",
    "german": "ÜBER Straße, GROẞE STRASSE",
    "turkish": "İstanbul'da ılık bir gün, IĞDIR",
    "cyrillic": "Привет, МИР! ёлка Ёж",
    "greek final sigma": "ΟΔΥΣΣΕΥΣ σοφός ΆΝΘΡΩΠΟΣ",
    "cjk": "日本の風景, 山と川。東京tower2024年",
    "kana": "ひらがな、カタカナ ｶﾀｶﾅ ゛",
    "korean": "한국어 프롬프트: 고양이",
    "korean jamo": "\u1112\u1161\u11ab\u1100\u116e\u11a8",
    "arabic": "قطة جميلة ٣ أيام",
    "arabic decomposed": "\u0627\u0654\u064a\u0627\u0645",
    "emoji": "emoji 🚀🔥 rocket",
    "emoji zwj and modifiers": "family 👨‍👩‍👧 ok👍🏽 flag🇯🇵!",
    "combining marks": "cafe\u0301 n\u0303o a\u0302\u0323 q\u0307\u0323 e\u0301\u0301",
    "numbers": "½ cup, x² ①② Ⅻ ３匹 ٣٤",
    "white space": "a\u00a0b\u2028c\u3000d\u0085e\u2009f",
    "cjk compatibility": "\uf900\uf901 \u2126",
}


@pytest.mark.parametrize(
    "prompt", [*PROMPTS, *UNICODE_PROMPTS.values()], ids=[*map(str, range(len(PROMPTS))), *UNICODE_PROMPTS]
)
def test_token_ids_are_clips(generator: sdcpp.Generator, prompt: str) -> None:
    tokens = generator.tokenize(prompt)
    assert tokens.ids == chunked(bpe_ids(prompt))
    assert tokens.weights == [1.0] * len(tokens.ids)


@lru_cache(maxsize=None)
def _assigned() -> list[str]:
    """Every code point assigned in this Python's Unicode (14.0 for 3.11), surrogates left out."""
    return [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]


# What engine patch 0015's tables cover: every cased letter, number and white space character, every
# canonical decomposition (given decomposed, so NFC must compose it again), and every 50th letter.
SWEEP = {
    "cased": lambda: [ch for ch in _assigned() if ch.lower() != ch],
    "numbers": lambda: [ch for ch in _assigned() if unicodedata.category(ch)[0] == "N"],
    "white space": lambda: [ch for ch in _assigned() if ch.isspace()],
    "letters": lambda: [ch for ch in _assigned() if unicodedata.category(ch)[0] == "L"][::50],
    # DIVES AKURU VOWEL SIGN O (Unicode 13) is left out: the tokenizers library's NFC predates it.
    "decomposed": lambda: [
        unicodedata.normalize("NFD", ch)
        for ch in _assigned()
        if unicodedata.decomposition(ch)[:1] not in ("", "<") and ch != "\U00011938"
    ],
}


# The Unicode version of patch 0015's tables, and this Python's: a newer Python knows code points they do not.
_PATCH = next((Path(__file__).parents[1] / "third_party" / "patches").glob("*-clip-tokenizer-unicode.patch"))
TABLES_UNICODE = re.search(r"from Unicode (\d+(?:\.\d+)*)", _PATCH.read_text(encoding="utf-8")).group(1)
PYTHON_UNICODE = unicodedata.unidata_version


@pytest.mark.skipif(
    [int(x) for x in PYTHON_UNICODE.split(".")] > [int(x) for x in TABLES_UNICODE.split(".")],
    reason=f"this Python's Unicode {PYTHON_UNICODE} is newer than patch 0015's tables ({TABLES_UNICODE})",
)
@pytest.mark.parametrize("kind", SWEEP)
def test_token_ids_are_clips_across_unicode(generator: sdcpp.Generator, kind: str) -> None:
    # Between dashes, a letter taken for punctuation, a number taken for a letter, white space taken
    # for neither, a wrong lowercase or a wrong composition changes the pieces or their BPE.
    words = SWEEP[kind]()
    for start in range(0, len(words), 40):
        prompt = "-".join(words[start : start + 40])
        assert generator.tokenize(prompt).ids == chunked(bpe_ids(prompt)), [f"U+{ord(c):04X}" for c in prompt]


# (prompt, its pieces with their weights), as AUTOMATIC1111's web UI parses emphasis. Before engine
# patch 0016 the engine dropped the backslash of "\(" only, not of \) \[ \] \\.
EMPHASIS = [
    ("a (red:1.3) barn", [("a ", 1.0), ("red", 1.3), (" barn", 1.0)]),
    ("((snow)) and [fog]", [("snow", 1.1 * 1.1), (" and ", 1.0), ("fog", 1 / 1.1)]),
    ("(a cat:0.5), (dog)", [("a cat", 0.5), (", ", 1.0), ("dog", 1.1)]),
    (r"\(left bracket only", [("(left bracket only", 1.0)]),
    (r"\(literal\) parens", [("(literal) parens", 1.0)]),
    (r"a \[b\] c \\ d", [(r"a [b] c \ d", 1.0)]),
    (r"(a \[b\]:1.5) c\d", [("a [b]", 1.5), (r" c\d", 1.0)]),
    ("(Straße:1.2) café", [("straße", 1.2), (" café", 1.0)]),
]


@pytest.mark.parametrize("prompt, pieces", EMPHASIS, ids=[p for p, _ in EMPHASIS])
def test_emphasis_becomes_token_weights(generator: sdcpp.Generator, prompt: str, pieces: list) -> None:
    ids: list[int] = []
    weights: list[float] = []
    for text, weight in pieces:
        piece = bpe_ids(text)
        ids += piece
        weights += [weight] * len(piece)
    tokens = generator.tokenize(prompt)
    assert tokens.ids == chunked(ids)
    expected = [1.0, *weights, 1.0]
    np.testing.assert_allclose(tokens.weights[: len(expected)], expected, rtol=1e-6)
    assert tokens.weights[len(expected) :] == [1.0] * (77 - len(expected))


LONG_PROMPT = ", ".join(f"detail {i}" for i in range(60))  # 229 tokens: 4 chunks


def test_long_prompt_tokens_come_in_chunks_of_75(generator: sdcpp.Generator) -> None:
    ids = bpe_ids(LONG_PROMPT)
    assert len(ids) == 229
    tokens = generator.tokenize(LONG_PROMPT)
    assert tokens.ids == chunked(ids)
    assert len(tokens.ids) == 4 * 77 and tokens.ids[77] == BOS and tokens.ids[76] == EOS


# --- 2. text encoder ---------------------------------------------------------------------------------


@pytest.mark.parametrize("clip_skip", [1, 2])
def test_text_encoder_hidden_states(engine, reference, clip_skip, measured) -> None:
    tokens = engine.tokenize("a photograph of an astronaut riding a horse")
    ours = _testing.encode_tokens(engine._ctx, tokens.ids, tokens.weights, clip_skip=clip_skip)
    theirs = reference.encode(tokens.ids, clip_skip=clip_skip)
    assert ours.shape == theirs.shape == (77, 768)
    error = relative_error(ours, theirs)
    measured[f"text encoder, clip_skip {clip_skip}"] = f"relative error {error:.1e} (bound {TEXT_ENCODER_BOUND:.0e})"
    assert error < TEXT_ENCODER_BOUND, f"text encoder (clip_skip {clip_skip}): relative error {error:.2e}"
    other_layer = reference.encode(tokens.ids, clip_skip=3 - clip_skip)
    assert relative_error(ours, other_layer) > 100 * TEXT_ENCODER_BOUND


def test_emphasis_scales_hidden_states_keeping_their_mean(engine, reference) -> None:
    tokens = engine.tokenize("a (red:1.3) barn in ((snow)), [fog]")
    ours = _testing.encode_tokens(engine._ctx, tokens.ids, tokens.weights)
    # AUTOMATIC1111's rule: scale each token's hidden state by its weight, then restore the mean.
    plain = reference.encode(tokens.ids)
    weighted = plain * np.asarray(tokens.weights, np.float32)[:, None]
    theirs = weighted * (plain.mean() / weighted.mean())
    assert relative_error(ours, theirs) < TEXT_ENCODER_BOUND
    assert relative_error(ours, plain) > 10 * TEXT_ENCODER_BOUND


def test_long_prompt_conditioning_is_its_chunks_encoded(engine, reference) -> None:
    tokens = engine.tokenize(LONG_PROMPT)
    ours = _testing.encode_tokens(engine._ctx, tokens.ids, tokens.weights)
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
    ours = _testing.diffusion_model(engine._ctx, latent, timestep, context)
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
    ours = _testing.decode_latent(engine._ctx, latent)
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
