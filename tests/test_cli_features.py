"""The features docs/cli.md shows, run with the installed ``sdcpp`` command on the random-weight SD1.5.

Each run makes one 64x64 image in two steps with the seed of ``baseline``; a feature's effect is what
its image changes against the baseline (or against the same run with the feature off), and what its
PNG metadata records.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdcpp import GeneratedImage, SkipLayerGuidance
from sdcpp.__main__ import parser
from sdcpp.images import read_metadata

from .test_cli import DEVICE, sdcpp_cmd

SMALL = ["-W", "64", "-H", "64", "--steps", "2", "-s", "5", "--device", DEVICE]


def generate(model: Path, out: Path, prompt: str, *args: object) -> np.ndarray:
    """``sdcpp generate MODEL PROMPT ... -o out``: the image's pixels (int16, for differences)."""
    result = sdcpp_cmd("generate", model, prompt, *SMALL, *args, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(out)]
    return pixels(out)


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.int16)


def changed(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


@pytest.fixture(scope="module")
def baseline(sd15_file: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    return generate(sd15_file, tmp_path_factory.mktemp("baseline") / "base.png", "a lighthouse")


def test_sampler_scheduler_and_previews_by_projection(sd15_file: Path, baseline: np.ndarray, tmp_path: Path) -> None:
    image = generate(sd15_file, tmp_path / "out.png", "a lighthouse", "--sampler", "dpm++2m", "--scheduler", "karras",
                     "--preview", tmp_path / "previews" / "{index}-{step}.png")
    params = GeneratedImage.read_parameters(tmp_path / "out.png")
    assert (params.sampler, params.scheduler) == ("dpm++2m", "karras")
    assert changed(image, baseline) > 0  # (random weights: the sampler moves the image only a little)
    # A preview per step (--preview-every 1), projected from the latent: 1/8 of the image's size.
    previews = sorted((tmp_path / "previews").iterdir())
    assert [p.name for p in previews] == ["0-1.png", "0-2.png"]
    assert {pixels(p).shape for p in previews} == {(8, 8, 3)}


def test_taesd_decodes_and_previews_every_nth_step(sd15_file: Path, taesd_file: Path, baseline: np.ndarray,
                                                   tmp_path: Path) -> None:
    image = generate(sd15_file, tmp_path / "out.png", "a lighthouse", "--taesd", taesd_file,
                     "--preview", tmp_path / "preview-{step}.jpg", "--preview-every", "2", "--preview-mode", "tae")
    assert changed(image, baseline) > 2, "TAESD decodes instead of the VAE"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "preview-2.jpg"]
    with Image.open(tmp_path / "preview-2.jpg") as preview:
        assert (preview.format, preview.size) == ("JPEG", (64, 64))  # decoded by the TAESD, full size


def test_a_vae_file_and_a_weight_type_change_the_image(sd15_file: Path, other_vae: Path, baseline: np.ndarray,
                                                       tmp_path: Path) -> None:
    assert changed(generate(sd15_file, tmp_path / "vae.png", "a lighthouse", "--vae", other_vae), baseline) > 2
    quantized = generate(sd15_file, tmp_path / "q8.png", "a lighthouse", "--weight-type", "q8_0", "-v")
    assert 0 < changed(quantized, baseline) < 40, "q8_0 weights: close to the float16 image, not equal"


def test_lora_by_prompt_tag_and_option(sd15_file: Path, lora_dir: Path, baseline: np.ndarray, tmp_path: Path) -> None:
    image = generate(sd15_file, tmp_path / "out.png", "a lighthouse <lora:kohya:1>", "--lora-dir", lora_dir,
                     "--loras", "peft=0.5")
    params = GeneratedImage.read_parameters(tmp_path / "out.png")
    assert (params.prompt, params.loras) == ("a lighthouse <lora:kohya:1>", {"peft": 0.5})
    assert changed(image, baseline) > 2


def test_embeddings_give_the_word_their_vectors(sd15_file: Path, embedding_dirs: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    # The same word from two files of other values: only the embedding's vectors differ.
    first, second = (generate(sd15_file, tmp_path / f"{i}.png", "a mystyle lighthouse", "--embeddings", folder)
                     for i, folder in enumerate(embedding_dirs))
    assert changed(first, second) > 2


def test_inpainting_repaints_inside_the_mask(sd15_file: Path, tmp_path: Path) -> None:
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)),
                              np.full((64, 64), 90, np.uint8)], -1)).save(tmp_path / "house.png")
    square = np.zeros((64, 64), np.uint8)
    square[16:48, 16:48] = 255
    Image.fromarray(square).convert("RGB").save(tmp_path / "mask.png")  # converted to grayscale
    Image.new("L", (64, 64), 0).save(tmp_path / "none.png")
    inputs = ["--init-image", tmp_path / "house.png", "--mask-image"]
    painted = generate(sd15_file, tmp_path / "door.png", "a red door", *inputs, tmp_path / "mask.png")
    kept = generate(sd15_file, tmp_path / "kept.png", "a red door", *inputs, tmp_path / "none.png")
    assert GeneratedImage.read_parameters(tmp_path / "door.png").width == 64
    inside, outside = (np.abs(painted - kept).mean(-1)[where].mean() for where in (square > 0, square == 0))
    assert inside > 1.3 * outside, (inside, outside)  # (as tests/test_generate.py's inpainting test)
    assert read_metadata(tmp_path / "door.png")["inputs"] == ["init_image", "mask_image"]


def test_controlnet_steers_by_the_control_image(sd15_file: Path, controlnet_file: Path, tmp_path: Path) -> None:
    square = Image.new("RGB", (64, 64))
    square.paste((255, 255, 255), (16, 16, 48, 48))
    square.save(tmp_path / "pose.png")
    control = ["--control-net", controlnet_file, "--control-image", tmp_path / "pose.png", "--control-strength"]
    steered = generate(sd15_file, tmp_path / "on.png", "a dancer", *control, "0.8")
    off = generate(sd15_file, tmp_path / "off.png", "a dancer", *control, "0")
    assert changed(steered, off) > 2
    record = read_metadata(tmp_path / "on.png")
    assert (record["control_strength"], record["inputs"]) == (0.8, ["control_image"])


def test_a_list_inside_key_values_runs_to_the_next_key(sd15_file: Path, tmp_path: Path) -> None:
    args = parser().parse_args(["generate", "m", "p", "--slg", "layers=7,8,9,scale=2.5,layer_end=0.3"])
    assert args.slg.apply(None) == SkipLayerGuidance(layers=(7, 8, 9), scale=2.5, layer_end=0.3)
    assert parser().parse_args(["generate", "m", "p", "--slg", "layers=,scale=0"]).slg.apply(None).layers == ()
    assert parser().parse_args(["generate", "m", "p", "--slg", "scale=1,layers=4"]).slg.apply(None) == \
        SkipLayerGuidance(layers=(4,), scale=1.0)
    # It reaches generate(), which refuses skip-layer guidance for a UNet (it is for DiTs).
    out = sdcpp_cmd("generate", sd15_file, "x", "--slg", "layers=7,8,9,scale=2.5", *SMALL, "-o", tmp_path / "x.png")
    assert out.returncode == 1 and out.stderr.splitlines()[-1].startswith("sdcpp: error: slg: "), out.stderr
