"""One definition of a generation's parameters: GenerationParams, the engine's struct, the metadata, the CLI."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp import GenerationParams, _core
from sdcpp._core import _testing
from sdcpp.params import settings, to_core

from .models_photomaker import write_id_embeddings

SMALL = dict(width=64, height=64, steps=2)


def test_sampler_and_scheduler_enums_are_the_engines_name_tables() -> None:
    assert [s.value for s in sdcpp.Sampler] == _testing.sample_methods()
    assert [s.value for s in sdcpp.Scheduler] == _testing.schedulers()
    assert [p.value for p in sdcpp.Prediction] == _core.prediction_names()


def test_the_engine_struct_has_exactly_the_settings_by_name() -> None:
    assert [f.name for f in settings()] == _testing.generation_params_fields()


def test_load_options_are_filled_by_name_and_all_of_them() -> None:
    from sdcpp.generator import load_options

    # Distinct values per field of a type, so that two fields swapped anywhere would show.
    flags = [f for f in _core.LoadOptions.fields if isinstance(getattr(_core.LoadOptions(), f), bool)]
    values = {**{f: i % 2 == 0 for i, f in enumerate(flags)}, "paths": {"model": "m.safetensors"},
              "weight_type": "q8_0", "device": "CPU", "rng": "cpu", "lora_apply_mode": "at_runtime",
              "prediction": "v", "embeddings": [("tok", "t.pt")], "threads": 3}
    options = load_options(**values)
    assert {f: getattr(options, f) for f in _core.LoadOptions.fields} == values
    with pytest.raises(TypeError, match="^load_options: missing circular_y"):
        load_options(**{k: v for k, v in values.items() if k != "circular_y"})


def test_to_core_fills_every_field_by_name(tmp_path: Path) -> None:
    # Distinct values per field, so that two fields swapped anywhere on the way would show.
    embedding = write_id_embeddings(tmp_path / "id_embeds.bin", np.ones((1, 512), np.float32))
    params = GenerationParams(
        "a man img", "b", id_images=[np.zeros((8, 8, 3), np.uint8)], id_embedding=embedding, style_strength=35, width=128, height=192, steps=3, cfg_scale=4.5, guidance=2.5, flow_shift=1.5, sampler="heun",
        scheduler="karras", seed=11,
        batch=2, clip_skip=5, strength=0.25, control_strength=0.5, auto_resize_ref_image=False, increase_ref_index=True,
        preview_every=4, preview_mode="tae",
        vae_tiling=sdcpp.VaeTiling(1, 2, 0.25, 3.0, 4.0), cache_mode="spectrum", cache_threshold=0.75,
        custom_sigmas=(9.0, 2.0, 1.0, 0.0), eta=0.125, img_cfg_scale=1.75,
        slg=sdcpp.SkipLayerGuidance((5, 6), 0.125, 0.375, 1.5),
    )
    core = to_core(params)

    def plain(value: object) -> object:  # a bound group as the dict to_dict() makes of it
        names = getattr(type(value), "fields", None)
        return {n: getattr(value, n) for n in names} if isinstance(names, list) else value

    assert {f.name: plain(getattr(core, f.name)) for f in settings()} == params.to_dict()
    unset = to_core(GenerationParams("a"))
    assert (unset.sampler, unset.scheduler, unset.clip_skip) == ("", "", -1)
    # Settings a Generator resolves from its family reach the engine as its own defaults without one.
    assert (unset.width, unset.height, unset.steps, unset.cfg_scale, unset.guidance) == (512, 512, 20, 7.0, 3.5)
    assert unset.flow_shift == math.inf


def test_values_are_stored_as_their_field_types() -> None:
    params = GenerationParams("x", cfg_scale=7, sampler="euler_a", steps=np.int64(3))
    assert params.cfg_scale == 7.0 and isinstance(params.cfg_scale, float)
    assert params.sampler is sdcpp.Sampler.EULER_A and type(params.steps) is int
    assert GenerationParams.from_dict({**params.to_dict(), "model": "ignored.safetensors"}) == params


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(steps=True), r"^steps: must be an integer from 1 to 10000 or None, not True"),
        (dict(steps="4"), r"^steps: must be an integer from 1 to 10000 or None, not '4'"),
        (dict(cfg_scale=math.nan), r"^cfg_scale: must be a finite number or None, not nan"),
        (dict(clip_skip=0), r"^clip_skip: must be a positive integer or None, not 0"),
        (dict(strength=-0.1), r"^strength: must be a number from 0 to 1, not -0.1"),
        (dict(width=0), r"^width: must be a positive integer or None, not 0"),
        (dict(seed=2**63 - 1, batch=2), r"^seed: must be -1 \(random\) or an integer from 0 to 2\*\*63 - 2"),
        (dict(sampler="bogus"), r"^sampler: unknown sampler 'bogus'; one of euler, euler_a"),
        (dict(negative_prompt=3), r"^negative_prompt: must be a str, not int"),
        (dict(increase_ref_index=1), r"^increase_ref_index: must be True or False, not 1"),
    ],
)
def test_params_check_themselves_once_made(kwargs: dict, message: str) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=message):
        GenerationParams("x", **kwargs)


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        GenerationParams("x").steps = 3  # type: ignore[misc]


def test_every_field_has_help() -> None:
    assert all(f.metadata["help"] for f in fields(GenerationParams))
    assert "steps (typing.Optional[int], default None): sampling steps; None: the model's default" in (
        GenerationParams.describe()
    )


def test_generate_takes_params_or_keywords_and_each_image_remakes_itself(generator: sdcpp.Generator) -> None:
    batch = generator.generate(GenerationParams("a lighthouse", seed=21, batch=2, **SMALL))
    by_keywords = generator.generate("a lighthouse", seed=21, batch=2, **SMALL)
    for a, b in zip(batch, by_keywords):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    second = batch[1].params
    assert (second.seed, second.batch) == (22, 1) and second.sampler is not None and second.scheduler is not None
    np.testing.assert_array_equal(np.asarray(generator.generate(second)[0]), np.asarray(batch[1]))
