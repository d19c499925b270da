"""generate(preview=...): images of the latent during sampling, at the steps asked for, in each mode."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sdcpp
from sdcpp import _core

SMALL = dict(width=64, height=64, seed=3)


def test_preview_modes_are_the_engines_name_table() -> None:
    assert [m.value for m in sdcpp.PreviewMode] == _core.preview_modes()


def _previews(gen: sdcpp.Generator, **kwargs) -> list[tuple[int, Image.Image]]:
    seen: list[tuple[int, Image.Image]] = []
    gen.generate("a lighthouse", preview=lambda step, image: seen.append((step, image)), **SMALL, **kwargs)
    return seen


@pytest.mark.parametrize("every, steps, expected", [(1, 3, [1, 2, 3]), (2, 5, [2, 4]), (3, 3, [3]), (4, 3, [])])
def test_previews_arrive_at_exactly_the_steps_asked_for(
    generator: sdcpp.Generator, every: int, steps: int, expected: list[int]
) -> None:
    seen = _previews(generator, steps=steps, preview_every=every, sampler="euler")
    assert [step for step, _ in seen] == expected


def test_latent_projection_is_an_rgb_image_at_the_latent_size(generator: sdcpp.Generator) -> None:
    seen = _previews(generator, steps=2, preview_mode="proj")
    assert [(image.mode, image.size) for _, image in seen] == [("RGB", (8, 8))] * 2
    assert np.asarray(seen[0][1]).std() > 0  # a picture, not a blank buffer


def test_vae_previews_are_full_size_and_the_last_one_is_the_image(generator: sdcpp.Generator) -> None:
    seen: list[tuple[int, Image.Image]] = []
    [image] = generator.generate("a lighthouse", steps=2, preview_mode="vae",
                                 preview=lambda step, im: seen.append((step, im)), **SMALL)
    assert [(step, im.mode, im.size) for step, im in seen] == [(1, "RGB", (64, 64)), (2, "RGB", (64, 64))]
    # The last step's denoised latent is what the final decode decodes.
    np.testing.assert_array_equal(np.asarray(seen[-1][1]), np.asarray(image))


def test_taesd_previews_need_a_taesd_and_come_from_it(sd15_file: Path, taesd_file: Path,
                                                      generator: sdcpp.Generator) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^preview_mode: tae needs a TAESD decoder"):
        generator.generate("a lighthouse", steps=1, preview_mode="tae", preview=print, **SMALL)
    with sdcpp.Generator(sd15_file, taesd=taesd_file, device=generator.device) as gen:
        seen: list[tuple[int, Image.Image]] = []
        [image] = gen.generate("a lighthouse", steps=2, preview_mode="tae",
                               preview=lambda step, im: seen.append((step, im)), **SMALL)
    assert [(step, im.mode, im.size) for step, im in seen] == [(1, "RGB", (64, 64)), (2, "RGB", (64, 64))]
    np.testing.assert_array_equal(np.asarray(seen[-1][1]), np.asarray(image))


@pytest.mark.parametrize("mode", ["vae", "tae"])
def test_decoded_previews_arrive_every_n_steps(sd15_file: Path, taesd_file: Path, generator: sdcpp.Generator,
                                              mode: str) -> None:
    with sdcpp.Generator(sd15_file, taesd=taesd_file if mode == "tae" else None, device=generator.device) as gen:
        seen = _previews(gen, steps=5, preview_every=2, preview_mode=mode, sampler="euler")
    assert [(step, image.size) for step, image in seen] == [(2, (64, 64)), (4, (64, 64))]


def test_previews_do_not_change_the_image(generator: sdcpp.Generator) -> None:
    plain = generator.generate("a lighthouse", steps=2, **SMALL)[0]
    previewed = generator.generate("a lighthouse", steps=2, preview_mode="vae", preview=lambda s, i: None, **SMALL)[0]
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(previewed))


def test_an_exception_in_the_preview_callback_is_raised_by_generate(generator: sdcpp.Generator) -> None:
    def fail(step: int, image: Image.Image) -> None:
        raise KeyError(f"preview {step}")

    with pytest.raises(KeyError, match="preview 1"):
        generator.generate("a lighthouse", steps=3, preview=fail, **SMALL)
    assert len(generator.generate("a lighthouse", steps=1, **SMALL)) == 1  # still usable


def test_previews_are_cleared_after_the_call(generator: sdcpp.Generator) -> None:
    calls: list[int] = []
    generator.generate("a lighthouse", steps=1, preview=lambda step, im: calls.append(step), **SMALL)
    generator.generate("a lighthouse", steps=2, **SMALL)
    assert calls == [1]


def test_two_generators_in_two_threads_get_only_their_own_previews(
    generator: sdcpp.Generator, sd15_file: Path
) -> None:
    """The engine's preview settings are process-global upstream; ours are per thread (patch 0040)."""
    seen: dict[str, list[tuple[int, tuple[int, int]]]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def run(gen: sdcpp.Generator, key: str, **kwargs) -> None:
        start.wait()
        gen.generate("a lighthouse", preview=lambda step, im: seen[key].append((step, im.size)), **SMALL, **kwargs)

    with sdcpp.Generator(sd15_file, device=generator.device) as other:
        threads = [
            threading.Thread(target=run, args=(generator, "a"), kwargs=dict(steps=4, preview_every=2)),
            threading.Thread(target=run, args=(other, "b"),
                             kwargs=dict(steps=3, preview_every=1, preview_mode="vae")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert seen == {"a": [(2, (8, 8)), (4, (8, 8))], "b": [(1, (64, 64)), (2, (64, 64)), (3, (64, 64))]}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(preview=3), r"^preview: must be callable or None, not int"),
        (dict(preview_every=0), r"^preview_every: must be a positive integer, not 0"),
        (dict(preview_mode="jpeg"), r"^preview_mode: unknown preview_mode 'jpeg'; one of none, proj, tae, vae"),
    ],
)
def test_bad_preview_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=message):
        sdcpp.GenerationParams("x", **kwargs)


def test_preview_mode_none_with_a_callback_is_refused(generator: sdcpp.Generator) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^preview_mode: none gives the preview callback nothing"):
        generator.generate("x", steps=1, preview_mode="none", preview=print, **SMALL)
