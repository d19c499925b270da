"""The ``sdcpp`` command, run as users run it: the installed entry point in a separate process.

Exit statuses 0/1/2/130, files written by the output pattern, the metadata round trip, ``--from``
(identical pixels), ``show``, the progress bar on a pseudo-terminal and plain lines in a pipe,
Ctrl-C. The options' derivation from Generator and GenerationParams is checked in-process.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import pytest
from PIL import Image

import sdcpp
from sdcpp import GeneratedImage, GenerationParams
from sdcpp.__main__ import parser
from sdcpp.cli_generate import UsageError, _load_inputs, _Outputs
from sdcpp.cli_options import KeyValues, Option, add_options, generator_options, given, image_options, setting_options
from sdcpp.params import settings

from .child import machine_state

DEVICE = os.environ.get("SDCPP_TEST_DEVICE", "auto")  # as tests/conftest.py's generator
SMALL = ["-W", "64", "-H", "64", "--steps", "2", "--device", DEVICE]
ENTRY_POINT = shutil.which("sdcpp", path=os.path.dirname(sys.executable)) or shutil.which("sdcpp")
DOCS = Path(__file__).parent.parent / "docs" / "cli.md"


def _terminal_sigint() -> None:
    # A suite started as a background job runs with SIGINT ignored and children inherit that
    # (tests/child.py): the command must get Ctrl-C as a terminal's process does.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sdcpp_cmd(*args: object, timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess:
    """Run the installed ``sdcpp`` command; a run that hangs fails with its output."""
    assert ENTRY_POINT, "the sdcpp entry point is not installed next to this Python"
    try:
        return subprocess.run([ENTRY_POINT, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                              preexec_fn=_terminal_sigint, **kwargs)  # type: ignore[call-overload]
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"sdcpp {args} ran {timeout} s ({machine_state()}):\n{e.stderr}") from None


# --- without a model ------------------------------------------------------------------------------


def test_version_from_the_entry_point_and_python_dash_m() -> None:
    out = sdcpp_cmd("--version")
    assert out.returncode == 0 and out.stdout.startswith(f"sdcpp {sdcpp.__version__}, ggml "), out
    module = subprocess.run([sys.executable, "-m", "sdcpp", "--version"], capture_output=True, text=True)
    assert module.stdout == out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "m.safetensors", "x", "--steps", "many"], "argument --steps: 'many' is not an integer"),
        (["generate", "m.safetensors", "x", "--sampler", "nope"], "argument --sampler: invalid choice: 'nope'"),
        (["generate", "m.safetensors", "x", "--loras", "style"], "--loras: 'style' is not NAME=VALUE"),
        (["generate", "m.safetensors"], "give a PROMPT, --prompts-file FILE or --from IMAGE"),
        (["generate"], "give MODEL (a model file or diffusers folder), or --diffusion-model PATH with the other"),
        (["generate", "m.safetensors", "x", "-o", "out.gif"], "-o: 'out.gif' must end in .png, .jpg, .jpeg, .webp"),
        (["generate", "m.safetensors", "x", "-o", "{name}.png"], "-o: unknown placeholder {name}"),
        (["generate", "m.safetensors", "x", "--preview", "{seed}.png"], "--preview: unknown placeholder {seed} in "
                                                                        "'{seed}.png'; use {step}, {index}"),
        (["generate", "m.safetensors", "x", "--preview", "p.gif"], "--preview: 'p.gif' must end in .png, .jpg"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2_before_loading_anything(args: list[str], message: str) -> None:
    out = sdcpp_cmd(*args)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_errors_exit_1_with_one_line_and_a_traceback_only_when_verbose(tmp_path: Path) -> None:
    missing = tmp_path / "missing.safetensors"
    out = sdcpp_cmd("generate", missing, "x")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.splitlines() == [f"loading {missing}...",
                                       f"sdcpp: error: model: no such file or folder: '{missing}'"], out.stderr
    verbose = sdcpp_cmd("generate", missing, "x", "--verbose")
    assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == out.stderr.splitlines()[-1]
    # A setting out of bounds is refused before the model loads.
    bad = sdcpp_cmd("generate", missing, "x", "--strength", "2")
    assert bad.returncode == 1 and bad.stderr.strip() == "sdcpp: error: strength: must be a number from 0 to 1, not 2.0"


def test_info_prints_this_builds_versions_backends_and_devices_as_json() -> None:
    out = sdcpp_cmd("info")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    expected = sdcpp.system_info()
    assert info.keys() == expected.keys()
    assert (info["version"], info["engine"], info["backends"]) == (sdcpp.__version__, expected["engine"],
                                                                   expected["backends"])
    assert [d["name"] for d in info["devices"]] == [d["name"] for d in expected["devices"]] and "CPU" in info["backends"]


def test_show_refuses_an_image_without_parameters(tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    out = sdcpp_cmd("show", plain)
    assert out.returncode == 1, out
    assert out.stderr.strip() == (f"sdcpp: error: {plain}: holds no sdcpp parameters (the PNG text chunk 'sdcpp'); "
                                  "it was not saved by sdcpp, or its metadata was removed")
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.jpg")
    assert "only PNG files keep it" in sdcpp_cmd("show", tmp_path / "plain.jpg").stderr
    assert sdcpp_cmd("show", tmp_path / "nope.png").stderr.strip() == \
        f"sdcpp: error: No such file or directory: {tmp_path / 'nope.png'}"


# --- the options come from Generator and GenerationParams ----------------------------------------


def _generate_options() -> dict[str, argparse.Action]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["generate"]._actions}


def test_every_generator_parameter_and_setting_and_input_image_is_an_option_with_help() -> None:
    options = _generate_options()
    parameters = [p for p in inspect.signature(sdcpp.Generator.__init__).parameters if p not in ("self", "model", "name")]
    wanted = [*parameters, *(f.name for f in settings() if f.name != "prompt"),
              "init_image", "mask_image", "control_image", "ref_images", "id_images"]
    assert [name for name in wanted if name not in options] == []
    assert [name for name in wanted if not options[name].help or len(options[name].help) < 10] == []
    assert options["prompts"].nargs == "*"
    assert options["flash_attn"].option_strings == ["--flash-attn", "--no-flash-attn"]
    assert options["lora_apply_mode"].choices == [m.value for m in sdcpp.LoraApplyMode]
    assert options["sampler"].choices == [m.value for m in sdcpp.Sampler]
    assert "vae" in [o.name for o in generator_options()] and "progress" not in [o.name for o in image_options()]


def test_command_line_has_one_option_per_setting() -> None:
    args = parser().parse_args(
        ["generate", "model.safetensors", "a lighthouse", "-W", "128", "--cfg-scale", "5", "--clip-skip", "2",
         "--sampler", "euler", "--control-strength", "0.5", "--loras", "style=0.8", "/a/b=c.safetensors=1",
         "--style-strength", "35"]
    )
    given = {f.name: getattr(args, f.name) for f in settings() if hasattr(args, f.name)}
    assert GenerationParams(args.prompts[0], **given) == GenerationParams(
        "a lighthouse", width=128, cfg_scale=5.0, clip_skip=2, sampler="euler", control_strength=0.5,
        loras={"style": 0.8, "/a/b=c.safetensors": 1.0}, style_strength=35.0)
    # Options not given are not in the namespace: the callee's defaults (or an image's settings) apply.
    plain = parser().parse_args(["generate", "m", "p"])
    assert not [o.name for o in [*setting_options(), *generator_options()] if hasattr(plain, o.name)]


def test_id_images_are_loaded_and_checked_but_set_no_size(sd15_file: Path, tmp_path: Path) -> None:
    # The pictures are read (here a grayscale one, converted) and reach generate(), which asks for the
    # PhotoMaker model; being of any size, they do not set the image's size as an init image does.
    Image.new("L", (30, 50), 128).save(tmp_path / "face.png")
    out = sdcpp_cmd("generate", sd15_file, "a photo of a man img", "--id-images", tmp_path / "face.png",
                    "--device", DEVICE, "-o", tmp_path / "out.png")
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1] == (
        "sdcpp: error: id_images: needs a PhotoMaker model: Generator(..., photo_maker=PATH)")


def test_embeddings_take_a_folder_or_several_files() -> None:
    assert parser().parse_args(["generate", "m", "p", "--embeddings", "dir"]).embeddings == "dir"
    assert parser().parse_args(["generate", "m", "p", "--embeddings", "a.pt", "b.pt"]).embeddings == ["a.pt", "b.pt"]


@dataclasses.dataclass(frozen=True)
class _Hires:
    scale: float = 2.0
    steps: int = 0
    upscaler: str = "latent"
    enabled: bool = True
    denoise: Optional[float] = None


def test_reference_images_are_several_files_converted_to_rgb(tmp_path: Path) -> None:
    Image.new("RGBA", (64, 64), (0, 0, 0, 255)).save(tmp_path / "a.png")
    Image.new("L", (80, 48), 255).save(tmp_path / "b.png")
    args = parser().parse_args(["generate", "m", "p", "--ref-images", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                                "--increase-ref-index", "--no-auto-resize-ref-image"])
    params = GenerationParams("p", **_load_inputs(args), **given(args, setting_options()))
    assert [r.shape for r in params.ref_images] == [(64, 64, 3), (48, 80, 3)]
    assert params.ref_images[1].min() == 255 and params.width is None  # references do not set the output's size
    assert (params.increase_ref_index, params.auto_resize_ref_image) == (True, False)
    one = parser().parse_args(["generate", "m", "p", "--ref-images", str(tmp_path / "a.png")])
    assert len(_load_inputs(one)["ref_images"]) == 1


def test_any_field_type_gets_an_option(capsys: pytest.CaptureFixture[str]) -> None:
    # What other fields may be: a small dataclass, Optional scalars, bools, mappings, sequences.
    p = argparse.ArgumentParser(prog="x")
    add_options(p, [
        Option("hires", Optional[_Hires], None, "hires fix"),
        Option("tiling", bool, False, "tile the VAE"),
        Option("weights", Mapping[str, int], {}, "name -> count"),
        Option("sizes", Sequence[int], (), "several"),
        Option("cache", Union[int, None], None, "a number or none"),
        Option("data", Union[int, str, list], None, "anything"),
    ])
    args = p.parse_args(["--hires", "scale=1.5, steps=10,enabled=no,denoise=none", "--tiling", "--weights", "a=1",
                         "b=2", "--sizes", "3", "--cache", "none", "--data", '{"a": [1]}'])
    assert args.hires == {"scale": 1.5, "steps": 10, "enabled": False, "denoise": None}
    assert args.hires.apply(None) == _Hires(1.5, 10, "latent", False, None)
    assert KeyValues(_Hires, {"steps": 3}).apply(_Hires(scale=4.0)) == _Hires(4.0, 3)  # --from's value, changed
    assert (args.tiling, args.weights, args.sizes, args.cache, args.data) == (True, {"a": 1, "b": 2}, [3], None,
                                                                             {"a": [1]})
    assert p.parse_args(["--hires", "none", "--no-tiling"]).hires is None
    if sys.version_info >= (3, 10):  # written as X | None
        add_options(p, [Option("clip", eval("int | None"), None, "new-style Optional")])
        assert (p.parse_args(["--clip", "none"]).clip, p.parse_args(["--clip", "2"]).clip) == (None, 2)
    assert p.parse_args(["--hires", ""]).hires.apply(None) == _Hires()
    help_text = p.format_help()
    assert "keys: scale (float, 2.0), steps (int, 0), upscaler (str, latent), enabled (bool, on), " \
           "denoise (float or none, none); 'none' turns it off" in " ".join(help_text.split())
    with pytest.raises(SystemExit):
        p.parse_args(["--hires", "scael=2"])
    assert "'scael=2' is not KEY=VALUE with KEY one of scale, steps, upscaler, enabled, denoise" in capsys.readouterr().err


def test_help_lists_every_option_and_a_percent_sign_in_a_docstring_is_text() -> None:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = sub.choices["generate"].format_help()
    assert "about 7% per image" in " ".join(text.split())  # Generator's doc of flash_attn
    assert "--control-image PATH" in text and "--keep-vae-on-cpu, --no-keep-vae-on-cpu" in text


# --- output patterns ------------------------------------------------------------------------------


def test_output_patterns(tmp_path: Path) -> None:
    one = _Outputs(str(tmp_path / "out.jpg"), 1)
    assert one.next(5, "x") == tmp_path / "out.jpg"
    batch = _Outputs(str(tmp_path / "out.jpg"), 3)  # no placeholder: -{index} before the extension
    assert [batch.next(5 + i, "x").name for i in range(3)] == ["out-0.jpg", "out-1.jpg", "out-2.jpg"]
    seeds = _Outputs(str(tmp_path / "sub" / "{seed}-{prompt}.webp"), 2)  # the same seed for two prompts
    assert [seeds.next(7, "A cat, (oil:1.2)!").name for _ in range(2)] == ["7-a-cat-oil-1-2.webp", "7-a-cat-oil-1-2-2.webp"]
    assert (tmp_path / "sub").is_dir()
    assert _Outputs("{index:03d}.png", 2).next(1, "x") == Path("000.png")
    with pytest.raises(UsageError, match=r"-o: 'out\{.png' is not a valid pattern"):
        _Outputs("out{.png", 1)


def test_every_command_in_the_docs_parses() -> None:
    commands = [line.strip()[2:] for line in DOCS.read_text().splitlines() if line.strip().startswith("$ sdcpp ")]
    assert len(commands) >= 10
    for command in commands:
        argv = shlex.split(command)[1:]
        if "--version" in argv or "--help" in argv:
            continue
        args = parser().parse_args(argv)
        if args.command == "generate":
            _Outputs(args.output, 4)


README = DOCS.parent.parent / "README.md"
_KEYWORD = re.compile(r"(?<![\w=!<>])([a-z_]\w*)=(?!=)")  # name= in a call, not == or a string's 'x=y'
_NO_OPTION = {"progress"}  # the command's progress bar is its form (docs/cli.md)


def _table(text: str, header: str) -> dict[str, list[str]]:
    """The rows of the Markdown table whose header row starts with ``header``, by their first cell."""
    lines = text[text.index(header):].splitlines()[2:]
    rows = [line.strip().strip("|").split(" | ") for line in lines[: next(
        (i for i, line in enumerate(lines) if not line.startswith("|")), len(lines))]]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def _readme_examples() -> dict[str, str]:
    """README's Python examples: each code block by the heading above it, each workflow by its row."""
    text = README.read_text()
    blocks = {}
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        heading = re.findall(r"^#+ (.+)$", text[: match.start()], re.M)[-1]
        blocks[heading] = match.group(1)
    return {**blocks, **{name: cells[0] for name, cells in _table(text, "| workflow |").items()}}


def test_every_readme_example_has_a_command_line_form() -> None:
    examples = _readme_examples()
    commands = {name: cells[0].strip("`") for name, cells in _table(DOCS.read_text(), "| README example |").items()}
    assert len(examples) >= 20 and "Quick start" in examples and "Previews" in examples
    assert [name for name in examples if name not in commands] == [], "README examples missing from docs/cli.md"
    assert [name for name in commands if name not in examples] == [], "docs/cli.md rows for no README example"
    for name, example in examples.items():
        argv = shlex.split(commands[name])
        assert argv[0] == "sdcpp", commands[name]
        args = parser().parse_args(argv[1:])
        groups = [value for value in vars(args).values() if isinstance(value, KeyValues)]
        unset = [k for k in _KEYWORD.findall(example)
                 if k not in _NO_OPTION and not hasattr(args, k) and not any(k in g for g in groups)]
        assert unset == [], f"{name}: the command sets none of {unset}: {commands[name]}"


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


# --- generating -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def made(sd15_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """Two prompts (one from standard input) x a batch of 2, in a pipe."""
    folder = tmp_path_factory.mktemp("made")
    out = sdcpp_cmd("generate", sd15_file, "a lighthouse", "--prompts-file", "-", "-b", "2", "-s", "7", *SMALL,
                    "-n", "blurry", "-o", folder / "{index}-{seed}-{prompt}.png", input="\n a red fox \n\n")
    assert out.returncode == 0, out.stderr
    return folder, out


def test_files_are_written_by_the_pattern_and_listed_on_stdout(made: tuple[Path, subprocess.CompletedProcess]) -> None:
    folder, out = made
    names = ["0-7-a-lighthouse.png", "1-8-a-lighthouse.png", "2-7-a-red-fox.png", "3-8-a-red-fox.png"]
    assert out.stdout.splitlines() == [str(folder / n) for n in names]
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def test_stderr_in_a_pipe_has_plain_lines_per_step_and_phase(made: tuple[Path, subprocess.CompletedProcess]) -> None:
    _, out = made
    lines = out.stderr.splitlines()
    assert "\x1b[" not in out.stderr and "━" not in out.stderr and "it/s" not in out.stderr
    assert lines[1].startswith("loaded sd15.safetensors (SD 1.x) on ")
    for image in (1, 2, 3, 4):
        assert any(re.fullmatch(rf"image {image}/4: step 2/2, [\d.]+ s/step, 0:00 left", line) for line in lines), lines
    assert any(line.startswith("decoding 2 images: image 2/2") for line in lines), lines
    assert "saved " + str(made[0] / "3-8-a-red-fox.png") + " (seed 8)" in lines


def test_metadata_round_trip_and_show(made: tuple[Path, subprocess.CompletedProcess]) -> None:
    folder, _ = made
    path = folder / "3-8-a-red-fox.png"
    params = GeneratedImage.read_parameters(path)
    assert (params.prompt, params.negative_prompt, params.seed, params.steps, params.width, params.batch) == \
        ("a red fox", "blurry", 8, 2, 64, 1)
    shown = sdcpp_cmd("show", path)
    assert shown.returncode == 0
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in shown.stdout.splitlines()[1:])
    assert rows["prompt"] == "a red fox" and rows["seed"] == "8" and rows["model"] == "sd15.safetensors"
    assert rows["sampler"] == params.sampler.value and rows["loras"] == "none"
    as_json = sdcpp_cmd("show", path, folder / "0-7-a-lighthouse.png", "--json")
    records = [__import__("json").loads(line) for line in as_json.stdout.splitlines()]
    assert [r["seed"] for r in records] == [8, 7] and GenerationParams.from_dict(records[0]) == params


def test_from_an_image_makes_identical_pixels_and_options_change_it(
    made: tuple[Path, subprocess.CompletedProcess], sd15_file: Path, tmp_path: Path
) -> None:
    source = made[0] / "3-8-a-red-fox.png"  # the second image of its batch: seed 8, remade alone
    again = sdcpp_cmd("generate", sd15_file, "--from", source, "--device", DEVICE, "-o", tmp_path / "again.png", "-q")
    assert again.returncode == 0, again.stderr
    assert again.stderr == "" and again.stdout.strip() == str(tmp_path / "again.png")  # --quiet
    np.testing.assert_array_equal(_pixels(tmp_path / "again.png"), _pixels(source))
    assert GeneratedImage.read_parameters(tmp_path / "again.png") == GeneratedImage.read_parameters(source)


def test_from_with_options_changes_only_those(made: tuple[Path, subprocess.CompletedProcess], sd15_file: Path,
                                              tmp_path: Path) -> None:
    source = made[0] / "3-8-a-red-fox.png"
    try:  # the same weights under another name (a symbolic link would resolve to the file's own name)
        os.link(sd15_file, tmp_path / "renamed.safetensors")
    except OSError as e:
        pytest.skip(f"cannot hard-link the model into {tmp_path}: {e}")
    out = sdcpp_cmd("generate", tmp_path / "renamed.safetensors", "a blue fox", "--from", source, "--steps", "1",
                    "--device", DEVICE, "-o", tmp_path / "changed.png")
    assert out.returncode == 0, out.stderr
    assert f"sdcpp: warning: {source} was made with sd15.safetensors, not renamed.safetensors: the pixels will " \
           "differ" in out.stderr.splitlines()
    changed = GeneratedImage.read_parameters(tmp_path / "changed.png")
    assert changed == dataclasses.replace(GeneratedImage.read_parameters(source), prompt="a blue fox", steps=1)


def test_reference_images_reach_the_generator_which_refuses_them_for_a_unet(sd15_file: Path, tmp_path: Path) -> None:
    Image.new("RGB", (64, 64)).save(tmp_path / "ref.png")
    out = sdcpp_cmd("generate", sd15_file, "x", "--ref-images", tmp_path / "ref.png", *SMALL, "-o", tmp_path / "x.png")
    assert out.returncode == 1 and out.stderr.splitlines()[-1].startswith(
        "sdcpp: error: ref_images: SD 1.x does not use reference images (the engine would run without them)"), out.stderr


def test_a_dit_from_component_files_needs_no_model_argument(flux_files: dict[str, Path], tmp_path: Path) -> None:
    # Flux as people download it: the transformer, the VAE and the text encoder, no single model file.
    parts = [arg for name, path in flux_files.items() for arg in (f"--{name.replace('_', '-')}", path)]
    out = sdcpp_cmd("generate", "a lighthouse", "a red barn", *parts, *SMALL[:4], "--steps", "1", "--device", "cpu",
                    "-o", tmp_path / "{index}.png")
    assert out.returncode == 0, out.stderr
    made = [GeneratedImage.read_parameters(tmp_path / f"{i}.png") for i in (0, 1)]
    assert [p.prompt for p in made] == ["a lighthouse", "a red barn"]  # the first argument is a prompt, not a model
    with Image.open(tmp_path / "0.png") as image:
        assert image.size == (64, 64)


def test_image_to_image_takes_the_input_size_and_from_asks_for_the_input(sd15_file: Path, tmp_path: Path) -> None:
    Image.new("RGBA", (64, 128), (200, 30, 30, 255)).save(tmp_path / "photo.png")  # RGBA: converted
    out = sdcpp_cmd("generate", sd15_file, "a red wall", "--init-image", tmp_path / "photo.png", "--strength", "0.5",
                    "--steps", "2", "--device", DEVICE, "-o", tmp_path / "wall.png", "-v")
    assert out.returncode == 0, out.stderr
    assert "generate_image 64x128" in out.stderr  # -v: the engine's log
    assert _pixels(tmp_path / "wall.png").shape == (128, 64, 3)
    missing = sdcpp_cmd("generate", sd15_file, "--from", tmp_path / "wall.png")
    assert missing.returncode == 1 and missing.stderr.strip() == (
        f"sdcpp: error: --from: {tmp_path / 'wall.png'} was made from init_image; give --init-image PATH as well")


def _in_a_terminal(args: list[object], timeout: float = 600, env: Optional[Mapping[str, str]] = None
                   ) -> tuple[int, str, str]:
    """Run sdcpp with stderr on a pseudo-terminal: (exit status, what the terminal showed, stdout)."""
    main, child = pty.openpty()
    with subprocess.Popen([ENTRY_POINT, *map(str, args)], stdin=child, stderr=child, stdout=subprocess.PIPE,
                          env={**(env or os.environ), "TERM": "xterm-256color", "COLUMNS": "120"},
                          preexec_fn=_terminal_sigint) as process:
        os.close(child)
        shown, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([main], [], [], 1)[0]:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the terminal closed: the command exited
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
        else:
            process.kill()
            raise AssertionError(f"ran {timeout} s ({machine_state()}): {shown.decode(errors='replace')[-3000:]}")
        os.close(main)
        stdout = process.stdout.read().decode()  # type: ignore[union-attr]
    return process.returncode, shown.decode(errors="replace"), stdout


def test_a_terminal_shows_a_progress_bar(sd15_file: Path, tmp_path: Path) -> None:
    status, shown, stdout = _in_a_terminal(["generate", sd15_file, "a lighthouse", "-b", "2", *SMALL,
                                            "-o", tmp_path / "out.jpg"])
    assert status == 0, shown
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    assert "━" in plain and re.search(r"100% 2/2 +\d+\.\d\d (it/s|s/it) +0:00 left", plain), plain  # time left
    assert re.search(r"image 2/2 +━+ 100% 2/2", plain) and "decoding 2 images" in plain, plain
    assert "loaded sd15.safetensors" in plain and "step 1/2" not in plain  # no plain lines
    # The batch of 2 with -o out.jpg: out-0.jpg and out-1.jpg, JPEG files; stdout (a pipe) lists them.
    assert stdout.splitlines() == [str(tmp_path / "out-0.jpg"), str(tmp_path / "out-1.jpg")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-0.jpg", "out-1.jpg"]
    with Image.open(tmp_path / "out-1.jpg") as image:
        assert image.format == "JPEG"


def test_without_rich_a_terminal_gets_plain_lines_and_a_hint_once(tmp_path: Path) -> None:
    (tmp_path / "rich").mkdir()
    (tmp_path / "rich" / "__init__.py").write_text("raise ImportError('rich is not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    status, shown, _ = _in_a_terminal(["generate", tmp_path / "missing.safetensors", "x"], env=env)
    assert status == 1
    assert shown.splitlines() == [
        "sdcpp: for a progress bar, install rich: python -m pip install rich",
        f"loading {tmp_path / 'missing.safetensors'}...",
        f"sdcpp: error: model: no such file or folder: '{tmp_path / 'missing.safetensors'}'",
    ], shown


def test_ctrl_c_stops_within_a_step_and_exits_130_without_a_traceback(sd15_file: Path, tmp_path: Path) -> None:
    # Steps are counted, not timed: a lost Ctrl-C runs all 40 steps.
    with subprocess.Popen([ENTRY_POINT, "generate", sd15_file, "x", "-W", "64", "-H", "64", "--steps", "40",
                           "--device", DEVICE, "-o", tmp_path / "x.png"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, preexec_fn=_terminal_sigint) as process:
        lines = []
        try:
            for line in process.stderr:  # type: ignore[union-attr]
                lines.append(line.rstrip())
                if line.startswith("image 1/1: step 1/40"):
                    process.send_signal(signal.SIGINT)
                    break
            _, rest = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"Ctrl-C did not stop it ({machine_state()}): {lines}") from None
    text = "\n".join(lines) + "\n" + rest
    assert process.returncode == 130, text
    assert "Traceback" not in text and text.rstrip().endswith("sdcpp: interrupted"), text
    assert len(re.findall(r"step \d+/40", text)) <= 3, text  # step 0, step 1, at most the one under way
    assert not (tmp_path / "x.png").exists()
