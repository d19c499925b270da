"""Textual-inversion embeddings: the word stands for the file's vectors; other words stay text."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

import sdcpp

SMALL = dict(width=64, height=64, steps=2, seed=5)
_VOCAB = 49408  # CLIP's vocabulary: the engine numbers an embedding's vectors from here


def _images(sd15_file: Path, embeddings, prompts: list[str]) -> tuple[sdcpp.Generator, list[np.ndarray]]:
    with sdcpp.Generator(sd15_file, device=os.environ.get("SDCPP_TEST_DEVICE", "auto"), embeddings=embeddings) as gen:
        tokens = [gen.tokenize(p).ids for p in prompts]
        images = [np.asarray(gen.generate(p, **SMALL)[0], dtype=np.int16) for p in prompts]
    return tokens, images


def test_the_token_stands_for_the_files_vectors(sd15_file: Path, embedding_dirs: tuple[Path, Path]) -> None:
    prompts = ["a mystyle lighthouse", "a lighthouse"]
    tokens_a, images_a = _images(sd15_file, embedding_dirs[0], prompts)
    tokens_b, images_b = _images(sd15_file, [embedding_dirs[1] / "MyStyle.safetensors"], prompts)
    custom = [t for t in tokens_a[0] if t >= _VOCAB]
    assert custom == [_VOCAB, _VOCAB + 1], "the word becomes the file's two vectors"
    assert tokens_a == tokens_b
    # Same tokens, different vectors: the image follows the file's values...
    assert np.abs(images_a[0] - images_b[0]).mean() > 2
    # ...and a prompt without the word does not depend on them.
    np.testing.assert_array_equal(images_a[1], images_b[1])


def test_an_unknown_name_stays_text_and_the_tokens_are_logged(
    sd15_file: Path, embedding_dirs: tuple[Path, Path], generator: sdcpp.Generator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sdcpp"):
        with sdcpp.Generator(sd15_file, device="cpu", embeddings=embedding_dirs[0], name="emb") as gen:
            assert gen.embeddings == {"mystyle": str(embedding_dirs[0] / "MyStyle.safetensors")}
            assert gen.tokenize("a otherstyle").ids == generator.tokenize("a otherstyle").ids
            gen.generate("a embedding:OtherStyle lighthouse, embedding:MyStyle.pt", "embedding:blurry", **SMALL)
    mine = [r.getMessage() for r in caplog.records if r.name == "sdcpp.emb" and r.levelno == logging.INFO]
    assert "embeddings (words in prompts that stand for them): mystyle" in mine
    # ComfyUI's embedding:NAME references the Generator has no file for are logged; a known one is not.
    assert [m for m in mine if "names no embedding" in m] == [
        f"{word!r} names no embedding of this Generator (it has: mystyle); it stays text"
        for word in ("embedding:OtherStyle", "embedding:blurry")
    ]


def test_missing_embedding_files_are_refused(sd15_file: Path, tmp_path: Path) -> None:
    with pytest.raises(sdcpp.ModelNotFoundError, match="^embeddings: 'nope.safetensors': no such file"):
        sdcpp.Generator(sd15_file, device="cpu", embeddings=[tmp_path / "nope.safetensors"])
    with pytest.raises(sdcpp.InvalidArgumentError, match="^embeddings: .* is not a folder"):
        sdcpp.Generator(sd15_file, device="cpu", embeddings=str(tmp_path / "nope"))
