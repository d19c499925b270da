"""Sampling extras: VAE tiling, step caching, seamless tiling, custom sigmas, eta, and the settings that
apply only to other model families (flow shift, skip-layer guidance, image cfg)."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp import GenerationParams, _core

from .child import run_python

SMALL = dict(width=64, height=64, steps=2, seed=5)


def _pixels(gen: sdcpp.Generator, **kwargs) -> np.ndarray:
    return np.asarray(gen.generate("a lighthouse", **{**SMALL, **kwargs})[0]).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


ENGINE = Path(__file__).resolve().parents[1] / "third_party" / "stable-diffusion.cpp"


@pytest.mark.skipif(not ENGINE.is_dir(), reason="needs the engine source a build of this checkout unpacks")
def test_cache_modes_are_the_engines() -> None:
    """The engine has no name table in the library: its sd_cache_mode_t order (stable-diffusion.h) and the
    names its command line maps to each value (examples/common/common.cpp)."""
    header = (ENGINE / "include" / "stable-diffusion.h").read_text()
    order = re.findall(r"\b(SD_CACHE_\w+)", re.search(r"enum sd_cache_mode_t \{(.*?)\}", header, re.S).group(1))
    cli = (ENGINE / "examples" / "common" / "common.cpp").read_text()
    named = dict((v, k) for k, v in re.findall(r'cache_mode == "([\w-]+)"\) \{\s*cache_params\.mode = (SD_CACHE_\w+);', cli))
    assert len(order) == 7 and named.keys() == set(order)
    assert [m.value for m in sdcpp.CacheMode] == _core.cache_modes() == [named[v] for v in order]


def test_cache_mode_refusal_follows_the_engine(generator: sdcpp.Generator, caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With the refusal lifted, the engine warns for exactly the modes sdcpp refuses for a UNet model."""
    monkeypatch.setattr(sdcpp.generator, "UNET_CACHE_MODES", frozenset(sdcpp.CacheMode))
    unsupported = set()
    for mode in sdcpp.CacheMode:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sdcpp"):
            _pixels(generator, cache_mode=mode)
        if "requested but not supported for this model type" in caplog.text:
            unsupported.add(mode)
    assert unsupported == set(sdcpp.CacheMode) - sdcpp.names.UNET_CACHE_MODES
    assert unsupported == {"easycache", "dbcache", "taylorseer", "cache-dit"}  # spectrum runs on both kinds


def test_groups_have_the_engine_structs_fields() -> None:
    from dataclasses import fields

    for group in (sdcpp.VaeTiling, sdcpp.SkipLayerGuidance):
        assert [f.name for f in fields(group)] == getattr(_core, group.__name__).fields


def test_unused_extras_leave_the_image_unchanged(generator: sdcpp.Generator) -> None:
    """Each extra at its default (given explicitly) is the generation without it."""
    plain = _pixels(generator, sampler="euler_a")
    explicit = dict(preview_every=1, preview_mode="proj", vae_tiling=False, cache_mode="disabled",
                    cache_threshold=None, custom_sigmas=None, eta=None, flow_shift=None, img_cfg_scale=None, slg=None,
                    auto_resize_ref_image=True, increase_ref_index=False)
    assert GenerationParams("x", **explicit) == GenerationParams("x")
    np.testing.assert_array_equal(_pixels(generator, sampler="euler_a", **explicit), plain)
    # euler_a's default eta is 1 (the engine's resolve_eta).
    np.testing.assert_array_equal(_pixels(generator, sampler="euler_a", eta=1.0), plain)


def test_eta_changes_a_stochastic_samplers_image(generator: sdcpp.Generator) -> None:
    for sampler in ("euler_a", "ddim_trailing"):
        default = _pixels(generator, sampler=sampler, steps=3)
        other = _pixels(generator, sampler=sampler, steps=3, eta=0.5)
        assert np.abs(default - other).max() > 8, sampler


def test_eta_leaves_a_deterministic_samplers_image_unchanged(generator: sdcpp.Generator) -> None:
    for sampler in ("euler", "dpm++2m"):
        np.testing.assert_array_equal(_pixels(generator, sampler=sampler, steps=3, eta=0.5),
                                      _pixels(generator, sampler=sampler, steps=3), sampler)


def test_custom_sigmas_equal_to_the_schedulers_give_the_same_image(generator: sdcpp.Generator) -> None:
    sigmas = generator.sigmas(3, sampler="euler", scheduler="karras", width=64, height=64)
    scheduled = _pixels(generator, steps=3, sampler="euler", scheduler="karras")
    np.testing.assert_array_equal(_pixels(generator, steps=3, sampler="euler", custom_sigmas=sigmas), scheduled)
    halved = _pixels(generator, steps=3, sampler="euler", custom_sigmas=[float(s) / 2 for s in sigmas])
    assert np.abs(halved - scheduled).max() > 8


def test_custom_sigmas_must_match_the_steps() -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^custom_sigmas: 3 noise levels make 2 steps, but steps "
                                                          r"is 4; pass steps=2"):
        GenerationParams("x", steps=4, custom_sigmas=[10.0, 1.0, 0.0])
    assert GenerationParams("x", custom_sigmas=[10.0, 1.0, 0.0]).steps == 2  # steps left to the sigmas
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^custom_sigmas: must be at least 2 finite noise levels"):
        GenerationParams("x", steps=1, custom_sigmas=[math.nan, 0.0])


def test_ucache_skips_steps_and_changes_the_image(generator: sdcpp.Generator, caplog: pytest.LogCaptureFixture) -> None:
    args = dict(steps=10, sampler="euler")
    plain = _pixels(generator, **args)
    with caplog.at_level(logging.INFO, logger="sdcpp"):
        cached = _pixels(generator, cache_mode="ucache", cache_threshold=100.0, **args)
    log = caplog.text
    skipped = int(re.search(r"UCache skipped (\d+)/10 steps", log).group(1))
    evaluations = int(re.search(r"(\d+) diffusion-model evaluations in 10 steps", log).group(1))
    assert skipped > 0
    # Caching runs the two guidance predictions separately (no batch-2 evaluation): 2 per step computed.
    assert evaluations == 2 * (10 - skipped)
    assert np.abs(cached - plain).max() > 0


def test_spectrum_skips_steps_and_changes_the_image(generator: sdcpp.Generator,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Spectrum predicts the denoised latent after its 4 warm-up steps (the engine's defaults) instead of
    evaluating the UNet: 3 of 10 steps measured."""
    args = dict(steps=10, sampler="euler")
    with caplog.at_level(logging.INFO, logger="sdcpp"):
        plain = _pixels(generator, **args)
        per_step = int(re.search(r"(\d+) diffusion-model evaluations in 10 steps", caplog.text).group(1)) / 10
        caplog.clear()
        cached = _pixels(generator, cache_mode="spectrum", **args)
    skipped = int(re.search(r"Spectrum skipped (\d+)/10 steps", caplog.text).group(1))
    evaluations = int(re.search(r"(\d+) diffusion-model evaluations in 10 steps", caplog.text).group(1))
    assert skipped > 0 and evaluations == per_step * (10 - skipped)
    assert np.abs(cached - plain).max() > 0


def test_settings_for_other_model_families_are_refused_for_unet_models(generator: sdcpp.Generator) -> None:
    for kwargs, message in [
        (dict(flow_shift=3.0), r"^flow_shift: applies to DiT models .* SD 1.x is a UNet model"),
        (dict(slg=True), r"^slg: applies to DiT models"),
        (dict(img_cfg_scale=1.5), r"^img_cfg_scale: applies to inpainting, instruct-pix2pix and Flux Fill/Control "
                                  r"models, not to SD 1.x"),
        (dict(ref_images=[np.zeros((64, 64, 3), np.uint8)]), r"^ref_images: SD 1.x does not use reference images "
                                                              r"\(the engine would run without them\); they are for Flux "
                                                              r"Kontext"),
        (dict(cache_mode="easycache"), r"^cache_mode: easycache does not apply to SD 1.x \(a UNet model\); use one "
                                       r"of disabled, spectrum, ucache"),
    ]:
        with pytest.raises(sdcpp.InvalidArgumentError, match=message):
            generator.generate("x", **SMALL, **kwargs)


def test_vae_tiling_decodes_close_to_the_untiled_image(generator: sdcpp.Generator) -> None:
    """128x128 is a 16x16 latent: 8x8 tiles with half overlap make 3x3 tiles, blended where they overlap."""
    args = dict(width=128, height=128, steps=1)
    whole = _pixels(generator, **args)
    tiled = _pixels(generator, vae_tiling=sdcpp.VaeTiling(tile_size_x=8, tile_size_y=8), **args)
    assert np.abs(tiled - whole).max() > 0  # it did tile
    assert psnr(tiled, whole) > 30


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from Linux's /proc")
def test_vae_tiling_decodes_in_less_peak_memory(sd15_file: Path) -> None:
    """Each decode in a fresh process on the CPU: the rise of its peak resident memory (VmHWM; ru_maxrss
    would carry over the forking test process's, which is larger) above the loaded model's, over one step
    without guidance, is the untiled decode's 127 MiB against 54 MiB in 8x8-latent tiles at 192x192 (2026-12-01)
    (about 4 s and 10 s on 2 shared cores; benchmarks/vae_tiling_memory.py for larger images). At
    128x128 the untiled decode rose only 55 MiB once engine patch 0056 dropped the im2col columns,
    too close to the UNet step's own rise for the halving to show."""
    def rise(tiling: str) -> float:
        out = run_python(f"""
            import re, sdcpp
            def peak():
                with open("/proc/self/status") as f:
                    return int(re.search(r"VmHWM:\\s+(\\d+) kB", f.read()).group(1)) / 1024
            with sdcpp.Generator({str(sd15_file)!r}, device="cpu") as gen:
                loaded = peak()
                gen.generate("x", width=192, height=192, steps=1, cfg_scale=1.0, seed=1, vae_tiling={tiling})
                print(peak() - loaded)
            """, timeout=300)
        assert out.returncode == 0, out.stderr
        return float(out.stdout.split()[-1])

    whole, tiled = rise("None"), rise("sdcpp.VaeTiling(tile_size_x=8, tile_size_y=8)")
    assert whole > 60 and tiled < whole / 2, (whole, tiled)


def test_circular_images_wrap_around(generator: sdcpp.Generator, sd15_file: Path) -> None:
    """Across the left/right edge, a circular image's columns correlate as neighbouring columns do
    (measured: 0.85-0.89 at the edge and 0.87-0.88 inside); a plain image's edges do not (0.00-0.05)."""
    def edge_correlation(image: np.ndarray) -> float:
        return float(np.corrcoef(image[:, 0].ravel(), image[:, -1].ravel())[0, 1])

    args = dict(width=128, height=64, steps=2)
    with sdcpp.Generator(sd15_file, circular_x=True, device=generator.device) as gen:
        circular = _pixels(gen, **args)
        assert gen.generate("x", **SMALL)[0].parameters["circular"] == [True, False]
    plain = _pixels(generator, **args)
    inside = np.mean([np.corrcoef(circular[:, i].ravel(), circular[:, i + 1].ravel())[0, 1] for i in range(127)])
    assert edge_correlation(circular) > 0.7 and inside > 0.7
    assert edge_correlation(plain) < 0.3


def test_circular_y_images_wrap_around_top_to_bottom(generator: sdcpp.Generator, sd15_file: Path) -> None:
    """As test_circular_images_wrap_around, across the top/bottom edge: the rows there correlate as neighbouring
    rows do (measured with seeds 5 and 6: 0.95 and 0.91 at the edge, 0.89 inside; 0.08 and 0.31 without)."""
    def edge_correlation(image: np.ndarray) -> float:
        return float(np.corrcoef(image[0].ravel(), image[-1].ravel())[0, 1])

    args = dict(width=64, height=128, steps=2)
    with sdcpp.Generator(sd15_file, circular_y=True, device=generator.device) as gen:
        circular = _pixels(gen, **args)
        assert gen.generate("x", **SMALL)[0].parameters["circular"] == [False, True]
    plain = _pixels(generator, **args)
    inside = np.mean([np.corrcoef(circular[i].ravel(), circular[i + 1].ravel())[0, 1] for i in range(127)])
    assert edge_correlation(circular) > 0.8 and inside > 0.8
    assert edge_correlation(plain) < 0.5


def test_extras_round_trip_through_the_metadata_and_the_core_struct() -> None:
    params = GenerationParams(
        "x", steps=2, preview_every=2, preview_mode="vae", vae_tiling=sdcpp.VaeTiling(tile_size_x=16, rel_size_y=2),
        cache_mode="ucache", cache_threshold=0.5, custom_sigmas=(3.0, 1.0, 0.0), eta=0.25, flow_shift=3.0,
        img_cfg_scale=1.5, slg=sdcpp.SkipLayerGuidance(layers=[7, 8], scale=3.0),
    )
    values = params.to_dict()
    assert values["vae_tiling"] == dict(tile_size_x=16, tile_size_y=0, target_overlap=0.5, rel_size_x=0.0,
                                        rel_size_y=2.0)
    assert values["slg"]["layers"] == [7, 8] and values["custom_sigmas"] == [3.0, 1.0, 0.0]
    assert GenerationParams.from_dict(values) == params
    core = sdcpp.params.to_core(params)
    assert (core.vae_tiling.tile_size_x, core.vae_tiling.rel_size_y, core.slg.layers) == (16, 2.0, [7, 8])
    assert (core.cache_mode, core.cache_threshold, core.custom_sigmas, core.eta) == ("ucache", 0.5, [3.0, 1.0, 0.0], 0.25)
    unset = sdcpp.params.to_core(GenerationParams("x"))
    assert unset.vae_tiling is None and unset.slg is None and unset.custom_sigmas == []
    assert math.isinf(unset.eta) and math.isinf(unset.flow_shift) and math.isinf(unset.cache_threshold)


def test_true_is_a_groups_defaults() -> None:
    assert GenerationParams("x", vae_tiling=True).vae_tiling == sdcpp.VaeTiling()
    assert GenerationParams("x", slg=True).slg == sdcpp.SkipLayerGuidance()
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^vae_tiling.target_overlap: must be a number from 0 to 0.5"):
        GenerationParams("x", vae_tiling=dict(target_overlap=0.9))
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^vae_tiling: unknown field\(s\) size of VaeTiling"):
        GenerationParams("x", vae_tiling=dict(size=3))


def test_the_command_line_takes_the_extras() -> None:
    from sdcpp.__main__ import parser
    from sdcpp.cli_options import given, setting_options

    args = parser().parse_args(
        ["generate", "m", "a lighthouse", "--steps", "2", "--custom-sigmas", "3", "1", "0", "--vae-tiling",
         "tile_size_x=16", "--slg", "true", "--cache-mode", "ucache", "--eta", "0.5", "--preview-mode", "vae"]
    )
    settings = given(args, setting_options())
    settings["vae_tiling"] = settings["vae_tiling"].apply(None)
    params = GenerationParams("a lighthouse", **settings)
    assert params == GenerationParams("a lighthouse", steps=2, custom_sigmas=(3.0, 1.0, 0.0), slg=True, eta=0.5,
                                      vae_tiling=sdcpp.VaeTiling(tile_size_x=16), cache_mode="ucache",
                                      preview_mode="vae")
