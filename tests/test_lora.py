"""LoRA: by path or by name, in loras= or as <lora:name:weight> in the prompt, in both apply modes."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp._core import _testing

from . import models_lora

SMALL = dict(width=64, height=64, steps=2, seed=5)
_APPLIED = re.compile(r"\((\d+) / (\d+)\) LoRA tensors have been applied")


@pytest.fixture(scope="module", params=["immediately", "at_runtime"])
def lora_gen(request: pytest.FixtureRequest, sd15_file: Path, lora_dir: Path) -> sdcpp.Generator:
    device = os.environ.get("SDCPP_TEST_DEVICE", "auto")
    with sdcpp.Generator(sd15_file, device=device, lora_dir=lora_dir, lora_apply_mode=request.param) as gen:
        yield gen


def pixels(gen: sdcpp.Generator, prompt: str = "a lighthouse", **kwargs) -> np.ndarray:
    return np.asarray(gen.generate(prompt, **SMALL, **kwargs)[0], dtype=np.int16)


def test_weight_zero_is_no_lora_one_changes_the_image_and_removing_it_restores_it(lora_gen: sdcpp.Generator) -> None:
    plain = pixels(lora_gen)
    np.testing.assert_array_equal(pixels(lora_gen, loras={"kohya": 0.0}), plain)
    with_lora = pixels(lora_gen, loras={"kohya": 1.0})
    assert np.abs(with_lora - plain).mean() > 2, "a LoRA at weight 1 must change the image"
    restored = pixels(lora_gen)
    if lora_gen.lora_apply_mode is sdcpp.LoraApplyMode.AT_RUNTIME:
        np.testing.assert_array_equal(restored, plain)
    else:  # merged into float16 weights and subtracted again: rounding remains (measured: 2 of 255 at most)
        assert np.abs(restored - plain).max() <= 3


def test_both_naming_schemes_load_every_tensor(lora_gen: sdcpp.Generator, caplog: pytest.LogCaptureFixture) -> None:
    plain = pixels(lora_gen)
    for name, expected in (("kohya", models_lora.lora_tensor_count()), ("peft", models_lora.lora_tensor_count(peft=True))):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="sdcpp"):
            changed = pixels(lora_gen, loras={name: 1.0})
        assert np.abs(changed - plain).mean() > 2, f"{name}: the LoRA did not change the image"
        # The engine logs "(applied / found) LoRA tensors have been applied" per model part it adapts.
        # (IMMEDIATELY also logs the removal of the LoRA before, as a merge of its negative.)
        counts = [tuple(map(int, m)) for r in caplog.records for m in _APPLIED.findall(r.getMessage())
                  if f"{name}.safetensors" in r.getMessage()]
        assert counts and all(a == b for a, b in counts), f"{name}: {counts}"
        assert sum(a for a, _ in counts) == expected, f"{name}: {counts}"


def test_prompt_tag_equals_loras_argument(lora_gen: sdcpp.Generator, lora_dir: Path) -> None:
    by_argument = pixels(lora_gen, loras={str(lora_dir / "peft.safetensors"): 0.7})
    image = lora_gen.generate("a lighthouse <lora:peft:0.7>", **SMALL)[0]
    np.testing.assert_array_equal(np.asarray(image, dtype=np.int16), by_argument)
    assert image.params.prompt == "a lighthouse <lora:peft:0.7>", "the metadata keeps the tag, as web UIs do"
    np.testing.assert_array_equal(np.asarray(lora_gen.generate(image.params)[0], dtype=np.int16), by_argument)


def test_swapping_loras_does_not_reload_the_model(lora_gen: sdcpp.Generator, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="sdcpp"):
        pixels(lora_gen, loras={"kohya": 1.0})
        pixels(lora_gen, loras={"peft": 0.5})
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert "loading LoRA from" in log
    assert "loading model from" not in log and "Version: SD 1.x" not in log


@pytest.mark.parametrize(
    "prompt, loras, message",
    [
        ("x", {"missing": 1.0}, r"^loras: no LoRA 'missing' in .*; it has: kohya, peft"),
        ("x <lora:missing:1>", {}, r"^loras: no LoRA 'missing'"),
        ("x <lora:kohya:strong>", {}, r"^prompt: <lora:kohya:strong> has no number as its weight"),
        ("x", {"kohya": float("nan")}, r"^loras: 'kohya': nan is not a name or path -> finite weight"),
        ("x", ["kohya"], r"^loras: must be a dict of name -> weight, not list"),
    ],
)
def test_unknown_or_malformed_loras_are_refused(lora_gen: sdcpp.Generator, prompt: str, loras, message: str) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=message):
        lora_gen.generate(prompt, loras=loras, **SMALL)


def test_a_lora_name_needs_a_lora_dir(generator: sdcpp.Generator) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^loras: no LoRA file 'kohya'; give its path, or .*lora_dir"):
        generator.generate("x", loras={"kohya": 1.0}, **SMALL)


def test_apply_modes_are_the_engines_names() -> None:
    assert [m.value for m in sdcpp.LoraApplyMode] == _testing.lora_apply_modes()
