"""PhotoMaker: random-weight v1 and v2 ID encoders (tests/models_photomaker.py) on the SDXL fixture.

The engine's PhotoMaker merges the ID into SDXL's 2048-wide text embedding (its fuse module is fixed
at that width), so the effect tests run SDXL (about 8.4 GB of memory, marked slow); the checks of
bad input run on the SD 1.5 fixture or none.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import sdcpp
from sdcpp import GeneratedImage, GenerationParams, InvalidArgumentError, ModelLoadError
from sdcpp.images import read_metadata
from sdcpp.params import to_core

from .models_photomaker import photomaker_v1, photomaker_v2, write_id_embeddings  # noqa: F401 (fixtures)

SMALL = dict(width=64, height=64, steps=2, seed=7, cfg_scale=5.0)
PROMPT = "a photo of a man img, in a garden"


def _face(seed: int, size: tuple[int, int] = (40, 48)) -> np.ndarray:
    # A colour of its own under the noise: the random vision tower's output follows an image's mean
    # more than its detail (two pictures of noise alone gave images 0.07 apart).
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, 3)
    noise = rng.integers(-40, 41, (*size[::-1], 3))
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def _pixels(gen: sdcpp.Generator, prompt: str = PROMPT, **kwargs: object) -> np.ndarray:
    return np.asarray(gen.generate(prompt, **{**SMALL, **kwargs})[0])


# --- checked before any model is read -----------------------------------------------------------------


@pytest.mark.parametrize(("prompt", "message"), [
    ("a photo of a man", r"must hold the trigger word 'img' once.*it holds it 0 times"),
    ("a man img and a woman img", r"it holds it 2 times"),
    ("img of a man", r"must follow its class word .* not start it"),
    ("a photo of a (man) img", r"must follow its class word"),
    ("a man BREAK img", r"must follow its class word"),
])
def test_a_prompt_the_engine_cannot_stack_the_id_into_is_refused(prompt: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^prompt: .*" + message):
        GenerationParams(prompt, id_images=[_face(0)])


def test_the_trigger_word_is_found_as_the_tokenizer_finds_it() -> None:
    for prompt in ("a man IMG", "a man img, smiling", "a man img2", "a woman\nimg"):
        GenerationParams(prompt, id_images=[_face(0)])
    GenerationParams("images of imgur", id_images=None)  # no id_images: no trigger needed


@pytest.mark.parametrize(("id_images", "message"), [
    ("face.png", r"^id_images: must be a list of images \(a list of one for one image\), not str"),
    (np.zeros((8, 8, 3), np.uint8), r"^id_images: .*not ndarray"),
    ([np.zeros((8, 8, 3), np.uint8), "no-such-face.png"], r"^id_images\[1\]: cannot read 'no-such-face.png'"),
    ([np.zeros((8, 8, 3), np.uint8), 3], r"^id_images\[1\]: must be a PIL image or a numpy array"),
    ([np.zeros((8, 8, 4), np.uint8)], r"^id_images\[0\]: .* with 4 channels"),
    ([np.zeros((8, 8, 3), np.float32)], r"^id_images\[0\]: must be uint8 pixels"),
])
def test_bad_id_images_are_refused(id_images: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        GenerationParams(PROMPT, id_images=id_images)


def test_id_images_may_be_files_of_any_size_and_none_is_an_empty_list(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("L", (30, 50), 90).save(tmp_path / "face.png")
    params = GenerationParams(PROMPT, id_images=[tmp_path / "face.png", _face(0)])
    assert [i.shape for i in params.id_images] == [(50, 30, 3), (48, 40, 3)] and params.width is None
    assert GenerationParams("no trigger needed", id_images=[]).id_images is None


def _embedding_file(path: Path, dims: tuple[int, ...], ggml_type: int = 0, extra: int = 0) -> Path:
    with open(path, "wb") as f:
        f.write(struct.pack("<3i", len(dims), 0, ggml_type) + struct.pack(f"<{len(dims)}i", *dims))
        f.write(b"\0" * (4 * int(np.prod(dims)) + extra))
    return path


def test_bad_id_embedding_files_are_refused_before_the_engine_reads_them(tmp_path: Path) -> None:
    faces = [_face(0), _face(1)]
    good = write_id_embeddings(tmp_path / "ok.bin", np.ones((2, 512), np.float32))
    assert GenerationParams(PROMPT, id_images=faces, id_embedding=good).id_embedding == str(good)
    cases = {
        "missing.bin": r"no such file",
        _embedding_file(tmp_path / "five.bin", (512, 2, 1, 1, 1)).name: r"not a float32 ID-embedding file",
        _embedding_file(tmp_path / "f16.bin", (512, 2), ggml_type=1).name: r"not a float32",
        _embedding_file(tmp_path / "long.bin", (512, 2), extra=4).name: r"is damaged",
        _embedding_file(tmp_path / "wide.bin", (256, 2)).name: r"holds 256 values per picture",
        _embedding_file(tmp_path / "three.bin", (512, 3)).name: r"embeddings of 3 pictures, but id_images has 2",
    }
    (tmp_path / "short.bin").write_bytes(b"\1\0")
    cases["short.bin"] = r"too short"
    for name, message in cases.items():
        with pytest.raises(InvalidArgumentError, match=r"^id_embedding: .*" + message):
            GenerationParams(PROMPT, id_images=faces, id_embedding=tmp_path / name)
    with pytest.raises(InvalidArgumentError, match=r"^id_embedding: .* go with id_images"):
        GenerationParams(PROMPT, id_embedding=good)


def test_style_strength_is_a_percentage() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^style_strength: must be a number from 0 to 100"):
        GenerationParams(PROMPT, style_strength=150)
    assert to_core(GenerationParams(PROMPT)).style_strength == 20.0  # the engine's default


def test_id_images_without_a_photomaker_model_are_refused(generator: sdcpp.Generator) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^id_images: needs a PhotoMaker model: .*photo_maker=PATH"):
        generator.generate(PROMPT, id_images=[_face(0)], **SMALL)


def test_photomaker_files_are_checked_before_loading(sd15_file: Path, photomaker_v1: Path, tmp_path: Path,
                                                     taesd_file: Path) -> None:
    misnamed = tmp_path / "pm-v2.safetensors"
    try:
        os.link(photomaker_v1, misnamed)  # the engine goes by the path: a symbolic link would do, resolved it would not
    except OSError as e:
        pytest.skip(f"cannot hard-link the model into {tmp_path}: {e}")
    with pytest.raises(ModelLoadError, match=r"holds PhotoMaker v1, but the engine picks the version by the "
                                             r"file's path, which contains 'v2'; rename"):
        sdcpp.Generator(sd15_file, photo_maker=misnamed)
    with pytest.raises(ModelLoadError, match=r"is not a PhotoMaker model the engine reads"):
        sdcpp.Generator(sd15_file, photo_maker=taesd_file)


def test_photomaker_needs_an_sdxl_model(sd15_file: Path, photomaker_v1: Path) -> None:
    # The engine would load it and abort at the first generation (its fuse module is 2048 wide).
    with pytest.raises(ModelLoadError, match=r"^photo_maker: .* SDXL's text embedding; SD 1.x models"):
        sdcpp.Generator(sd15_file, photo_maker=photomaker_v1, device="cpu")


# --- effects, on SDXL -----------------------------------------------------------------------------------


def _loaded(model: Path, photo_maker: Path) -> Iterator[sdcpp.Generator]:
    with sdcpp.Generator(model, photo_maker=photo_maker, device=os.environ.get("SDCPP_TEST_DEVICE", "auto")) as gen:
        yield gen


@pytest.mark.slow
class TestVersion1:
    @pytest.fixture(scope="class")
    @classmethod
    def gen(cls, sdxl_file: Path, photomaker_v1: Path) -> Iterator[sdcpp.Generator]:
        yield from _loaded(sdxl_file, photomaker_v1)

    @pytest.fixture(scope="class")
    @classmethod
    def runs(cls, gen: sdcpp.Generator) -> dict[str, np.ndarray]:
        """One generation per case, shared by the tests below (each takes 30 to 45 s)."""
        return {
            "id": _pixels(gen, id_images=[_face(0)]),
            "plain": _pixels(gen),  # on the PhotoMaker Generator, without ID pictures
            "id again": _pixels(gen, id_images=[_face(0)]),
            "other id": _pixels(gen, id_images=[_face(1)]),
            "style 100": _pixels(gen, id_images=[_face(0)], style_strength=100),
            "no trigger": _pixels(gen, "a photo of a man, in a garden"),
        }

    def test_id_images_change_the_image(self, runs: dict[str, np.ndarray]) -> None:
        assert np.abs(runs["id"].astype(int) - runs["plain"]).mean() > 2

    def test_the_same_inputs_give_the_same_pixels_after_a_generation_without_id(
            self, runs: dict[str, np.ndarray]) -> None:
        # The engine turned PhotoMaker off for good after a generation without ID pictures, and then
        # aborted on its next step (0045-photomaker-per-call.patch).
        assert np.array_equal(runs["id"], runs["id again"])

    def test_other_id_images_give_another_image(self, runs: dict[str, np.ndarray]) -> None:
        # Small: the ID replaces one token of the 77 the UNet's (random, near uniform) cross-attention
        # averages over; 0.12 measured.
        assert np.abs(runs["id"].astype(int) - runs["other id"]).mean() > 0.05

    def test_style_strength_100_samples_every_step_from_the_prompt_without_the_trigger(
            self, runs: dict[str, np.ndarray]) -> None:
        # The first style_strength percent of the steps see the prompt with the trigger word removed.
        # The engine took the previous PhotoMaker generation's strength (20 here) until patch 0045.
        assert np.array_equal(runs["style 100"], runs["no trigger"])
        assert not np.array_equal(runs["style 100"], runs["id"])

    def test_the_engine_runs_without_photomaker_where_it_finds_no_trigger(
            self, gen: sdcpp.Generator, runs: dict[str, np.ndarray]) -> None:
        # Past the Python checks (straight to _core): the engine read before the start of an empty
        # list; patched, it logs and draws from the prompt alone.
        params = gen.with_defaults(GenerationParams("a photo of a man, in a garden", **SMALL))
        pixels = gen._ctx.generate(to_core(params), id_images=[_face(0)])[0]
        assert np.array_equal(pixels, runs["no trigger"])

    def test_metadata_records_the_inputs_and_settings(self, gen: sdcpp.Generator, tmp_path: Path) -> None:
        image = gen.generate(PROMPT, id_images=[_face(0)], style_strength=100, **SMALL)[0]
        image.save(tmp_path / "id.png")
        record = read_metadata(tmp_path / "id.png")
        assert record["inputs"] == ["id_images"] and record["style_strength"] == 100.0
        assert GeneratedImage.read_parameters(tmp_path / "id.png") == image.params

    def test_v1_reads_no_id_embedding(self, gen: sdcpp.Generator, tmp_path: Path) -> None:
        embedding = write_id_embeddings(tmp_path / "id.bin", np.ones((1, 512), np.float32))
        with pytest.raises(InvalidArgumentError, match=r"^id_embedding: only PhotoMaker v2 reads"):
            gen.generate(PROMPT, id_images=[_face(0)], id_embedding=embedding, **SMALL)


@pytest.mark.slow
class TestVersion2:
    @pytest.fixture(scope="class")
    @classmethod
    def gen(cls, sdxl_file: Path, photomaker_v2: Path) -> Iterator[sdcpp.Generator]:
        yield from _loaded(sdxl_file, photomaker_v2)

    def test_id_embeddings_change_the_image(self, gen: sdcpp.Generator, tmp_path: Path) -> None:
        assert gen.photo_maker_version == 2
        faces = [_face(0), _face(1)]
        embeddings = np.random.default_rng(0).standard_normal((2, 512)).astype(np.float32)
        first = write_id_embeddings(tmp_path / "a.bin", embeddings)
        other = write_id_embeddings(tmp_path / "b.bin", embeddings[::-1])
        a = _pixels(gen, id_images=faces, id_embedding=first)
        assert np.array_equal(a, _pixels(gen, id_images=faces, id_embedding=first))
        # The embeddings pair with the pictures in order: swapped, the ID tokens change (4 of 77; 0.06 measured).
        assert np.abs(a.astype(int) - _pixels(gen, id_images=faces, id_embedding=other)).mean() > 0.02
        assert np.abs(a.astype(int) - _pixels(gen)).mean() > 2

    def test_v2_needs_the_id_embedding(self, gen: sdcpp.Generator) -> None:
        with pytest.raises(InvalidArgumentError, match=r"^id_embedding: PhotoMaker v2 needs the pictures' "):
            gen.generate(PROMPT, id_images=[_face(0)], **SMALL)


@pytest.mark.slow
def test_the_command_line_generates_with_photomaker(sdxl_file: Path, photomaker_v1: Path, tmp_path: Path) -> None:
    from PIL import Image

    from .test_cli import sdcpp_cmd

    for i in range(2):
        Image.fromarray(_face(i)).save(tmp_path / f"face{i}.png")
    out = sdcpp_cmd("generate", sdxl_file, PROMPT, "--photo-maker", photomaker_v1, "--id-images",
                    tmp_path / "face0.png", tmp_path / "face1.png", "--style-strength", "50", "--steps", "2",
                    "--width", "64", "--height", "64", "--device", "cpu", "-o", tmp_path / "out.png", "-v")
    assert out.returncode == 0, out.stderr
    assert "Photomaker ID Stacking" in out.stderr  # the engine's log: the ID was merged
    record = read_metadata(tmp_path / "out.png")
    assert record["inputs"] == ["id_images"] and record["style_strength"] == 50.0
    missing = sdcpp_cmd("generate", sdxl_file, "--from", tmp_path / "out.png")
    assert missing.returncode == 1 and "give --id-images PATH as well" in missing.stderr
