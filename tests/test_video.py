"""Video generation (Wan 2.1 T2V 1.3B from tests/models_wan.py, random weights, on the CPU).

A tiny clip (5 frames of 64x32, one step, CFG 1: one transformer evaluation) takes about 10 s here.
"""

from __future__ import annotations

import threading
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sdcpp
from sdcpp import _core

from . import models_wan

TINY = dict(frames=5, width=64, height=32, steps=1, cfg_scale=1.0)


@pytest.fixture(scope="module")
def wan(wan_files: dict[str, Path]) -> sdcpp.Generator:
    with sdcpp.Generator(**wan_files, device="cpu") as gen:
        yield gen


@pytest.fixture(scope="module")
def clip(wan: sdcpp.Generator) -> sdcpp.Video:
    return wan.generate_video("a lighthouse at dusk", seed=1, **TINY)


def pixels(video: sdcpp.Video) -> np.ndarray:
    return np.stack([np.asarray(frame, dtype=np.float64) for frame in video])


def test_wan_is_detected_and_loads_without_its_text_encoder(wan_files: dict[str, Path], wan: sdcpp.Generator) -> None:
    info = sdcpp.inspect(**wan_files)
    assert (info.family, info.missing, info.recommended) == ("Wan 2.x", [], ["t5xxl"])
    assert (wan.family, wan.makes_video, wan.size_multiple) == ("Wan 2.x", True, 16)
    # docs/wan.md's settings: 832x480, CFG 6; the engine's flow shift for Wan.
    assert {k: wan.defaults[k] for k in ("width", "height", "cfg_scale", "flow_shift")} == {
        "width": 832, "height": 480, "cfg_scale": 6.0, "flow_shift": 5.0}


def test_a_wan_transformer_of_a_depth_the_engine_does_not_know_is_refused_before_it_aborts(
    wan_files: dict[str, Path], tmp_path: Path
) -> None:
    # wan.hpp: GGML_ABORT("invalid num_layers(%d) of wan") for any count but 30 and 40, which ended the process.
    two_blocks = models_wan.write_wan_t2v(tmp_path / "wan-2-blocks.gguf", depth=2)
    with pytest.raises(sdcpp.ModelLoadError, match="diffusion_model: this Wan transformer has 2 blocks; the engine"):
        sdcpp.Generator(diffusion_model=two_blocks, vae=wan_files["vae"], device="cpu")


def test_a_video_has_the_frames_and_size_asked(clip: sdcpp.Video) -> None:
    assert len(clip) == 5 and len(clip.frames) == 5
    assert all(isinstance(f, sdcpp.GeneratedImage) and f.size == (64, 32) and f.mode == "RGB" for f in clip)
    frames = pixels(clip)
    assert frames.std() > 5, "a random-weight model still draws something other than a flat video"
    assert np.abs(frames[1:] - frames[:-1]).mean() > 1, "the frames differ: this is a video, not one image repeated"
    assert clip.video.frames == 5 and clip.params.seed == 1 and clip.params.flow_shift == 5.0
    assert clip[0].parameters["family"] == "Wan 2.x" and clip[0].parameters["frames"] == 5


def test_the_seed_fixes_the_video_and_another_seed_changes_it(wan: sdcpp.Generator, clip: sdcpp.Video) -> None:
    np.testing.assert_array_equal(pixels(wan.generate_video("a lighthouse at dusk", seed=1, **TINY)), pixels(clip))
    assert np.abs(pixels(wan.generate_video("a lighthouse at dusk", seed=2, **TINY)) - pixels(clip)).mean() > 1


def test_without_umt5_the_prompt_has_no_effect(wan: sdcpp.Generator, clip: sdcpp.Video) -> None:
    # The engine feeds zeros in place of the text encoder's output (T5CLIPEmbedder): Wan's only text
    # encoder is umT5, which the fixture leaves out (5.7 G parameters; docs/video.md).
    np.testing.assert_array_equal(pixels(wan.generate_video("a red barn in snow", seed=1, **TINY)), pixels(clip))


def test_one_frame_and_frame_counts_that_are_not_4k_plus_1(wan: sdcpp.Generator) -> None:
    assert len(wan.generate_video("x", seed=1, **{**TINY, "frames": 1})) == 1
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"frames: Wan makes 4k \+ 1 frames .* not 4; pass 1 or 5"):
        wan.generate_video("x", **{**TINY, "frames": 4})
    with pytest.raises(sdcpp.InvalidArgumentError, match="frames: must be"):
        wan.generate_video("x", **{**TINY, "frames": 0})


def test_the_video_settings_can_be_given_as_a_group(wan: sdcpp.Generator, clip: sdcpp.Video) -> None:
    video = wan.generate_video("a lighthouse at dusk", seed=1, width=64, height=32, steps=1, cfg_scale=1.0,
                               video=sdcpp.VideoParams(frames=5))
    np.testing.assert_array_equal(pixels(video), pixels(clip))
    with pytest.raises(sdcpp.InvalidArgumentError, match="frames: give the video's settings as video= or as keywords"):
        wan.generate_video("x", video={"frames": 5}, frames=5)


def test_progress_reports_each_step_and_a_cancel_stops_the_video(wan: sdcpp.Generator) -> None:
    steps: list[tuple[int, int]] = []

    def progress(step: int, total: int, seconds: float) -> None:
        steps.append((step, total))
        if step == 1:
            threading.Thread(target=wan.cancel).start()

    with pytest.raises(sdcpp.Cancelled):
        wan.generate_video("x", seed=1, progress=progress, **{**TINY, "steps": 50})
    assert steps[:2] == [(0, 50), (1, 50)] and len(steps) <= 3, steps
    assert len(wan.generate_video("x", seed=1, **{**TINY, "frames": 1})) == 1, "usable after a cancel"


def test_image_and_video_models_say_which_method_to_call(wan: sdcpp.Generator, flux_files: dict[str, Path]) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"Wan 2\.x makes videos, not images; call generate_video"):
        wan.generate("x", width=64, height=64)
    with sdcpp.Generator(**flux_files, device="cpu") as flux:  # the smallest image model the tests have (420 MB)
        assert not flux.makes_video
        with pytest.raises(sdcpp.InvalidArgumentError, match=r"Flux makes images, not videos; call generate\(\)"):
            flux.generate_video("x", frames=5)


@pytest.mark.parametrize("frame", ["init_image", "end_image"])
def test_a_text_to_video_model_refuses_the_frames_the_engine_would_ignore(wan: sdcpp.Generator, frame: str) -> None:
    # The engine uses them only for the I2V, FLF2V, TI2V and VACE transformers (docs/video.md).
    with pytest.raises(sdcpp.InvalidArgumentError, match=f"{frame}: this Wan 2.x model takes no input frames"):
        wan.generate_video("x", **{**TINY, frame: np.zeros((32, 64, 3), np.uint8)})


@pytest.mark.parametrize(
    ("setting", "value"), [("batch", 2), ("hires", True), ("control_image", np.zeros((32, 64, 3), np.uint8))]
)
def test_image_only_settings_are_refused(wan: sdcpp.Generator, setting: str, value: object) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=f"{setting}: not used by generate_video"):
        wan.generate_video("x", **{**TINY, setting: value})


def test_saved_as_an_animation_that_keeps_every_frame(clip: sdcpp.Video, tmp_path: Path) -> None:
    for name in ("clip.webp", "clip.gif"):
        clip.save(tmp_path / name, fps=10)  # GIF counts in hundredths of a second
        with Image.open(tmp_path / name) as saved:
            saved.load()  # WebP tells a frame's duration once it is read
            assert (saved.n_frames, saved.size, saved.info["duration"], saved.info["loop"]) == (5, (64, 32), 100, 0)
    with Image.open(tmp_path / "clip.webp") as saved:  # lossless by default
        saved.seek(2)
        np.testing.assert_array_equal(np.asarray(saved.convert("RGB")), np.asarray(clip[2]))
    with pytest.raises(sdcpp.InvalidArgumentError, match="a video is saved as WebP or GIF, not 'MP4'"):
        clip.save(tmp_path / "clip.mp4")


def test_video_params_are_the_bound_structs_fields() -> None:
    assert [f.name for f in fields(sdcpp.VideoParams)] == list(_core.VideoParams.fields)
