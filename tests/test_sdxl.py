"""SDXL base 1.0 with random weights: the engine runs the single file, a GGUF of it and the diffusers
folder alike, both layouts hold the same weights, and the engine's conditioning vector is diffusers'.

The models are 6.9 GB each in float16 and are written only when these tests run (about 50 s each).
The engine's tests come first and load one model at a time: the process's peak stays about one model
(7.3 GB), before torch holds any memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from safetensors import safe_open

import sdcpp
from sdcpp import GenerationParams
from sdcpp._core import _testing

from sdcpp._headers import read_header

from .conftest import needs_reference
from .memory import release_freed_memory
from .reference import BOS, EOS, bpe_ids

pytestmark = pytest.mark.slow  # 7 GB models, written on first use

# Tensors the single file and the diffusers folder must share, exactly: (component, diffusers name,
# single-file name, how the diffusers tensor is cut from the single file's).
C = 1280
SAME_TENSORS = [
    ("unet", "add_embedding.linear_1.weight", "model.diffusion_model.label_emb.0.0.weight", None),
    ("unet", "add_embedding.linear_2.bias", "model.diffusion_model.label_emb.0.2.bias", None),
    ("unet", "down_blocks.1.attentions.0.proj_in.weight", "model.diffusion_model.input_blocks.4.1.proj_in.weight", None),
    (
        "unet",
        "mid_block.attentions.0.transformer_blocks.9.attn2.to_k.weight",
        "model.diffusion_model.middle_block.1.transformer_blocks.9.attn2.to_k.weight",
        None,
    ),
    ("unet", "up_blocks.1.upsamplers.0.conv.weight", "model.diffusion_model.output_blocks.5.2.conv.weight", None),
    ("vae", "decoder.mid_block.attentions.0.to_q.weight", "first_stage_model.decoder.mid.attn_1.q.weight", "squeeze"),
    (
        "text_encoder",
        "text_model.encoder.layers.11.mlp.fc2.weight",
        "conditioner.embedders.0.transformer.text_model.encoder.layers.11.mlp.fc2.weight",
        None,
    ),
    (
        "text_encoder_2",
        "text_model.embeddings.position_embedding.weight",
        "conditioner.embedders.1.model.positional_embedding",
        None,
    ),
    *(
        (
            "text_encoder_2",
            f"text_model.encoder.layers.31.self_attn.{proj}.{kind}",
            f"conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_{kind}",
            slice(i * C, (i + 1) * C),
        )
        for i, proj in enumerate(("q_proj", "k_proj", "v_proj"))
        for kind in ("weight", "bias")
    ),
    ("text_encoder_2", "text_projection.weight", "conditioner.embedders.1.model.text_projection", "T"),
]


def _diffusers_file(folder: Path, component: str) -> Path:
    name = "model.safetensors" if component.startswith("text_encoder") else "diffusion_pytorch_model.safetensors"
    return folder / component / name


class EngineRun(NamedTuple):
    family: str
    weight_types: dict
    image: np.ndarray  # the one-step 64x64 image of PROMPT
    y: np.ndarray  # SDXL's vector conditioning of PROMPT for a WIDTH x HEIGHT image


PROMPT = "a lighthouse at dusk"
WIDTH, HEIGHT = 1024, 768  # of the size embeddings in y: unequal, so that their order shows


def _engine_run(model: Path) -> EngineRun:
    """One model in memory at a time (7 GB each)."""
    with sdcpp.Generator(model, device="cpu") as gen:
        image = np.asarray(gen.generate(PROMPT, width=64, height=64, steps=1, seed=1)[0])
        ids, weights = gen._ctx.tokenize(PROMPT)
        y = _testing.encode_vector(gen._ctx, ids, weights, width=WIDTH, height=HEIGHT)
        return EngineRun(gen.family, gen.weight_types, image, y)


@pytest.fixture(scope="module")
def file_run(sdxl_file: Path) -> EngineRun:
    return _engine_run(sdxl_file)


@pytest.fixture(scope="module")
def folder_run(sdxl_folder: Path) -> EngineRun:
    return _engine_run(sdxl_folder)


def test_engine_runs_the_single_file_as_sdxl(file_run: EngineRun) -> None:
    assert file_run.family == "SDXL"
    # Every tensor but the two the engine skips by name (CLIP-L's position_ids, bigG's logit_scale).
    assert file_run.weight_types == {"conditioner": {"f16": 196 + 389}, "diffusion": {"f16": 1680}, "vae": {"f16": 248}}
    assert file_run.image.shape == (64, 64, 3)
    assert file_run.image.std() > 1, "a constant image means the pipeline produced nothing"


def test_sdxl_defaults_to_1024(sdxl_file: Path) -> None:
    # Only loaded, never run at 1024x1024 (minutes on a CPU). Here rather than in test_defaults.py: the
    # 7 GB file is deleted after its last test, and the sooner that test comes after its first, the less
    # disk the run needs at once.
    with sdcpp.Generator(sdxl_file, device="cpu") as gen:
        assert (gen.defaults["width"], gen.defaults["height"], gen.defaults["cfg_scale"]) == (1024, 1024, 7.0)
        assert gen.with_defaults(GenerationParams("x", width=512)).height == 1024


# --- the engine runs the folder, the single file and its GGUF alike ----------------------------------
# third_party/patches/0018: the folder's second text encoder (loaded as "te.1.") was renamed as if it were
# the first, so the folder was detected as SD 1.x and refused.
# third_party/patches/0020: the engine applies text_projection as a Linear weight, which the folder stores
# (text_projection.weight), and the single file stores its transpose (OpenCLIP's x @ P matrix); before the
# patch nothing transposed it, so every single-file SDXL image had a wrong pooled embedding (up to 128
# levels apart from the folder's on this one-step image). The engine now transposes it when loading.


def test_engine_runs_the_single_file_and_the_diffusers_folder_alike(
    file_run: EngineRun, folder_run: EngineRun, sdxl_folder: Path
) -> None:
    assert folder_run.family == sdcpp.inspect(sdxl_folder).family == "SDXL"
    # Measured: at most 1 level apart (the parts' float16 values reach the engine through different
    # conversions); before patch 0020, up to 128.
    assert np.abs(folder_run.image.astype(int) - file_run.image).max() <= 1
    np.testing.assert_allclose(file_run.y, folder_run.y, rtol=0, atol=1e-5)  # measured: equal


def test_layouts_hold_the_same_tensors(sdxl_file: Path, sdxl_folder: Path) -> None:
    with safe_open(sdxl_file, "np") as single:
        names = set(single.keys())
        assert len(names) == 2515  # as in sd_xl_base_1.0.safetensors
        for component, diffusers_name, single_name, cut in SAME_TENSORS:
            with safe_open(_diffusers_file(sdxl_folder, component), "np") as folder:
                ours = folder.get_tensor(diffusers_name)
            theirs = single.get_tensor(single_name)
            if cut == "T":
                theirs = theirs.T
            elif cut == "squeeze":  # a 1x1 convolution in the single file, a Linear in diffusers
                theirs = theirs[:, :, 0, 0]
            elif cut is not None:
                theirs = theirs[cut]
            assert ours.dtype == theirs.dtype == np.float16
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{component}: {diffusers_name} vs {single_name}")
    # The cuts are not all the same tensor: q, k and v differ.
    with safe_open(_diffusers_file(sdxl_folder, "text_encoder_2"), "np") as te2:
        q, k = (te2.get_tensor(f"text_model.encoder.layers.0.self_attn.{p}_proj.weight") for p in "qk")
    assert not np.array_equal(q, k)


# --- diffusers loads the folder -----------------------------------------------------------------------


def _no_loading_problems(info: dict) -> None:
    assert {key: value for key, value in info.items() if value} == {}, "the load left keys out or over"


@needs_reference
def test_diffusers_loads_every_component(sdxl_folder: Path) -> None:
    import torch
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    index = json.loads((sdxl_folder / "model_index.json").read_text())
    assert index["_class_name"] == StableDiffusionXLPipeline.__name__
    # One at a time, in float16, to bound memory (the UNet alone is 5.1 GB).
    for cls, component in (
        (UNet2DConditionModel, "unet"),
        (AutoencoderKL, "vae"),
        (CLIPTextModel, "text_encoder"),
        (CLIPTextModelWithProjection, "text_encoder_2"),
    ):
        model, info = cls.from_pretrained(sdxl_folder / component, torch_dtype=torch.float16, output_loading_info=True)
        _no_loading_problems(info)
        assert type(model).__name__ == index[component][1]
        n = sum(p.numel() for p in model.parameters())
        assert n == {"unet": 2567463684, "vae": 83653863, "text_encoder": 123060480, "text_encoder_2": 694659840}[component]
        del model


def _causal_attention(x, wqkv, bqkv, heads: int):
    import torch

    q, k, v = (t.unflatten(-1, (heads, -1)).transpose(0, 1) for t in (x @ wqkv.T + bqkv).chunk(3, dim=-1))
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
    return (scores.softmax(-1) @ v).transpose(0, 1).flatten(1)


def _open_clip_bigg(path: Path, ids: list[int]):
    """OpenCLIP ViT-bigG's text tower, written out from its open_clip tensors in the single file:
    the penultimate layer's output (what SDXL conditions on), the final EOS state, text_projection."""
    import torch

    prefix = "conditioner.embedders.1.model."
    ln = torch.nn.functional.layer_norm
    with safe_open(path, "pt") as f:

        def t(name: str):
            return f.get_tensor(prefix + name).float()

        x = t("token_embedding.weight")[ids] + t("positional_embedding")
        for n in range(32):
            r = f"transformer.resblocks.{n}."
            if n == 31:
                penultimate = x
            h = ln(x, (C,), t(r + "ln_1.weight"), t(r + "ln_1.bias"))
            h = _causal_attention(h, t(r + "attn.in_proj_weight"), t(r + "attn.in_proj_bias"), 20)
            x = x + h @ t(r + "attn.out_proj.weight").T + t(r + "attn.out_proj.bias")
            h = ln(x, (C,), t(r + "ln_2.weight"), t(r + "ln_2.bias"))
            h = torch.nn.functional.gelu(h @ t(r + "mlp.c_fc.weight").T + t(r + "mlp.c_fc.bias"))
            x = x + h @ t(r + "mlp.c_proj.weight").T + t(r + "mlp.c_proj.bias")
        x = ln(x, (C,), t("ln_final.weight"), t("ln_final.bias"))
        return penultimate, x[ids.index(EOS)], t("text_projection")


def _diffusers_text_pipeline(folder: Path):
    """A StableDiffusionXLPipeline of the folder's text encoders (float32) and the tokenizers of
    tests/reference.py: what encode_prompt needs."""
    import torch
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from .reference import sdxl_tokenizers

    torch.set_grad_enabled(False)
    tokenizer, tokenizer_2 = sdxl_tokenizers()
    return StableDiffusionXLPipeline(
        vae=None,
        unet=None,
        scheduler=None,
        text_encoder=CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32),
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(folder / "text_encoder_2", torch_dtype=torch.float32),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        add_watermarker=False,
    )


@needs_reference
def test_diffusers_text_encoder_2_matches_open_clip_on_the_single_file(sdxl_file: Path, sdxl_folder: Path) -> None:
    """StableDiffusionXLPipeline.encode_prompt, with both tokenizers of tests/reference.py, gives
    what OpenCLIP computes from the single file's tensors: the same weights, cut and transposed right."""
    pipe = _diffusers_text_pipeline(sdxl_folder)
    embeds, _, pooled, _ = pipe.encode_prompt(PROMPT, device="cpu", do_classifier_free_guidance=False)
    assert embeds.shape == (1, 77, 768 + C) and pooled.shape == (1, C)

    words = bpe_ids(PROMPT)
    ids_2 = [BOS, *words, EOS] + [0] * (75 - len(words))  # tokenizer_2 pads with "!"
    penultimate, eos, projection = _open_clip_bigg(sdxl_file, ids_2)
    errors = {}
    for name, got, want in (
        ("hidden states", embeds[0, :, 768:], penultimate),
        ("pooled", pooled[0], eos @ projection),  # open_clip: x @ text_projection
        ("pooled, projection transposed", pooled[0], eos @ projection.T),
    ):
        errors[name] = float((got - want).norm() / want.norm())
    assert errors["hidden states"] < 1e-4 and errors["pooled"] < 1e-4, errors
    assert errors["pooled, projection transposed"] > 0.5, errors


@needs_reference
def test_engine_vector_conditioning_is_diffusers(file_run: EngineRun, sdxl_folder: Path) -> None:
    """SDXL's y as StableDiffusionXLPipeline gives it to the UNet's add_embedding: text_encoder_2's pooled,
    projected embedding, then the size embeddings of (original height, width, crop top, left, target
    height, width). The single file's; the folder's is the same (the test above)."""
    import torch
    from diffusers.models.embeddings import Timesteps

    pipe = _diffusers_text_pipeline(sdxl_folder)
    _, _, pooled, _ = pipe.encode_prompt(PROMPT, device="cpu", do_classifier_free_guidance=False)
    unet = json.loads((sdxl_folder / "unet" / "config.json").read_text())
    time_proj = Timesteps(unet["addition_time_embed_dim"], unet["flip_sin_to_cos"], unet["freq_shift"])
    sizes = time_proj(torch.tensor([HEIGHT, WIDTH, 0, 0, HEIGHT, WIDTH], dtype=torch.float32)).flatten()
    want = torch.cat([pooled[0], sizes]).numpy()
    assert file_run.y.shape == want.shape == (unet["projection_class_embeddings_input_dim"],)
    # What the engine computed from a single file before patch 0020: the final EOS state times the
    # transpose of the projection.
    ids = pipe.tokenizer_2(PROMPT, padding="max_length", max_length=77, return_tensors="pt").input_ids
    eos_state = pipe.text_encoder_2(ids).last_hidden_state[0, ids[0].argmax()]
    transposed = (eos_state @ pipe.text_encoder_2.text_projection.weight).numpy()

    def error(got: np.ndarray, reference: np.ndarray) -> float:
        return float(np.linalg.norm(got - reference) / np.linalg.norm(reference))

    errors = {
        "pooled": error(file_run.y[:C], want[:C]),
        "sizes": error(file_run.y[C:], want[C:]),
        "pooled, projection transposed": error(transposed, want[:C]),
    }
    # Measured: 6.7e-4 (the engine's f16 dot products) and 7.0e-6; before patch 0020 the pooled one was 1.41.
    assert errors["pooled"] < 3e-3 and errors["sizes"] < 3e-5, errors
    assert errors["pooled, projection transposed"] > 0.5, errors


# --- the whole image, against StableDiffusionXLPipeline ---------------------------------------------------
# As tests/test_parity.py does for SD 1.5: the same weights (the folder; diffusers upcasts them to float32),
# the same initial noise (rng="cpu" is torch's CPU generator), Euler on the "discrete" = "linspace"
# schedule. Memory: the
# engine's model (7 GB) is freed before diffusers loads anything, and diffusers holds its text encoders
# (3.3 GB in float32) and its UNet (10.3 GB) one after the other.
IMAGE_SETTINGS = dict(steps=4, cfg_scale=5.0, width=128, height=128)
# Not empty: for an empty negative prompt diffusers zeroes both the uncond context and the pooled
# embedding (force_zeros_for_empty_prompt), the engine only the context (docs/correctness.md).
NEGATIVE = "blurry, dark"
# Measured 57.6 dB, at most 1 level apart; the next seed 9.7 dB. The bounds are SD 1.5's (test_parity.py):
# the same engine code and precision, so the same room for other CPUs' rounding (docs/correctness.md).
IMAGE_MIN_PSNR = 45.0
IMAGE_MAX_ABS = 4


def _diffusers_image(folder: Path, seed: int) -> np.ndarray:
    """StableDiffusionXLPipeline's float image (H, W, 3) in [0, 1] of PROMPT, float32 on the CPU."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    text = _diffusers_text_pipeline(folder)
    embeds, negative, pooled, negative_pooled = text.encode_prompt(
        PROMPT, device="cpu", do_classifier_free_guidance=True, negative_prompt=NEGATIVE
    )
    del text
    release_freed_memory()  # the text encoders' 3.3 GB, before the UNet's 10.3 GB
    pipe = StableDiffusionXLPipeline(
        vae=AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32),
        unet=UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32),
        scheduler=EulerDiscreteScheduler.from_pretrained(folder / "scheduler", timestep_spacing="linspace"),
        text_encoder=None,
        text_encoder_2=None,
        tokenizer=None,
        tokenizer_2=None,
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    settings = dict(IMAGE_SETTINGS)
    result = pipe(
        prompt_embeds=embeds,
        negative_prompt_embeds=negative,
        pooled_prompt_embeds=pooled,
        negative_pooled_prompt_embeds=negative_pooled,
        width=settings["width"],
        height=settings["height"],
        num_inference_steps=settings["steps"],
        guidance_scale=settings["cfg_scale"],
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
    )
    return result.images[0]


def _psnr(image: np.ndarray, reference_image: np.ndarray) -> float:
    mse = np.mean((np.asarray(image, np.float64) - reference_image) ** 2)
    return float(10 * np.log10(255**2 / mse))


@needs_reference
# torch's Tensor.__array__ predates numpy 2's copy keyword; diffusers' schedulers trip over it (as in test_parity.py).
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_engine_image_matches_diffusers_pipeline(sdxl_folder: Path, measured: dict) -> None:
    import resource

    # What the tests before left freed but held (several GB): without it the suite peaked at 22 GiB
    # here, near CI's 24; with it 15 GiB.
    release_freed_memory()
    with sdcpp.Generator(sdxl_folder, device="cpu", rng="cpu") as gen:
        ours, other_seed = (
            np.asarray(gen.generate(PROMPT, NEGATIVE, sampler="euler", scheduler="discrete", seed=seed, **IMAGE_SETTINGS)[0])
            for seed in (42, 43)
        )
    theirs = _diffusers_image(sdxl_folder, seed=42) * 255
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (ru_maxrss is in KiB)
    assert ours.shape == theirs.shape == (128, 128, 3)
    assert theirs.std() > 20, "a flat image would agree too easily"
    worst = float(np.abs(ours - np.round(theirs)).max())
    measured["SDXL Euler image"] = (
        f"PSNR {_psnr(ours, theirs):.1f} dB, max abs {worst:.0f} levels "
        f"(bounds {IMAGE_MIN_PSNR:.0f} dB, {IMAGE_MAX_ABS} levels); other seed {_psnr(other_seed, theirs):.1f} dB; "
        f"peak RSS {peak:.1f} GiB"
    )
    assert _psnr(ours, theirs) >= IMAGE_MIN_PSNR and worst <= IMAGE_MAX_ABS, measured["SDXL Euler image"]
    assert _psnr(other_seed, theirs) < IMAGE_MIN_PSNR / 2


@pytest.fixture(scope="module")
def gguf_run(sdxl_file: Path, tmp_path_factory: pytest.TempPathFactory) -> EngineRun:
    """The single file converted to GGUF (names and layout as the file has them), with text_projection
    in q8_0: the engine must dequantize it before it transposes it."""
    gguf = sdcpp.convert(sdxl_file, tmp_path_factory.mktemp("gguf") / "sdxl.gguf", "f16", {"text_projection": "q8_0"})
    (projection,) = (t for t in read_header(gguf).tensors if t.name.endswith("text_projection"))
    assert projection.name == "conditioner.embedders.1.model.text_projection" and projection.dtype == "q8_0"
    try:
        return _engine_run(gguf)
    finally:
        gguf.unlink()  # 7 GB


def test_engine_runs_a_gguf_of_the_single_file_as_the_file(gguf_run: EngineRun, file_run: EngineRun) -> None:
    """Last in the file, after the folder's tests: the folder is deleted before the GGUF is written (both
    7 GB). The file runs as the folder does (test_engine_runs_the_single_file_and_the_diffusers_folder_alike)."""
    assert gguf_run.weight_types["conditioner"] == {"f16": 584, "q8_0": 1}
    # Measured: 2 levels apart (the projection's q8_0 rounding); with the projection not transposed, up
    # to 128.
    assert np.abs(file_run.image.astype(int) - gguf_run.image).max() <= 4
    pooled, file_pooled = gguf_run.y[:C], file_run.y[:C]
    assert np.linalg.norm(pooled - file_pooled) / np.linalg.norm(file_pooled) < 1e-2
