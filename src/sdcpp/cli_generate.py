"""``sdcpp generate MODEL PROMPT...``: every Generator option and generation setting, several prompts,
an output pattern, ``--from IMAGE`` (an image's own settings), and a progress display."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import string
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

from PIL import Image

from .cli_options import KeyValues, add_options, generator_options, given, image_mode, image_options, setting_options
from .cli_progress import Display, Tracker, make_display
from .errors import InvalidArgumentError
from .generator import Generator
from .images import read_metadata
from .params import GenerationParams

__all__ = ["UsageError", "add_parser"]

# Short forms of a few options, as other Stable Diffusion command lines spell them.
_SHORT = {"negative_prompt": "-n", "width": "-W", "height": "-H", "seed": "-s", "batch": "-b"}
# Output extensions and the options their format is saved with (PNG keeps the parameters).
_FORMATS = {".png": {}, ".jpg": {"quality": 95}, ".jpeg": {"quality": 95}, ".webp": {"quality": 95}}
_PLACEHOLDERS = ("index", "seed", "prompt")
_PREVIEW_PLACEHOLDERS = ("step", "index")

_EXAMPLES = """examples:
  sdcpp generate model.safetensors "a lighthouse at dusk" -W 512 -H 512 --steps 20 -s 42 -o lighthouse.png
  sdcpp generate model.safetensors "a cat" "a dog" -b 2 -o 'out/{index}-{seed}.jpg'
  sdcpp generate model.safetensors --prompts-file prompts.txt -o '{prompt}-{seed}.png'
  sdcpp generate model.safetensors "a watercolour" --init-image photo.png --strength 0.6
  sdcpp generate model.safetensors --from out.png --steps 30     (the image's settings, steps changed)
  sdcpp generate model.safetensors "a cat" --steps 20 --preview 'preview-{step}.png' --preview-every 5
"""


class UsageError(Exception):
    """A command line that cannot run, found after parsing (exit status 2, as argparse's own)."""


def add_parser(commands: Any) -> None:
    g = commands.add_parser(
        "generate", help="generate images from prompts", epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate images with MODEL. Each option below is a parameter of sdcpp.Generator or a field "
                    "of sdcpp.GenerationParams (docs/cli.md).",
    )
    g.add_argument("model", nargs="?",
                   help="model file (.safetensors, .gguf, .ckpt) or diffusers folder; with --diffusion-model and "
                        "the other component files it may be left out, and a first argument that is no existing "
                        "file or folder is then the first PROMPT")
    g.add_argument("prompts", nargs="*", metavar="PROMPT",
                   help="what to draw; several prompts make a batch of images each")
    g.add_argument("--prompts-file", metavar="FILE",
                   help="more prompts, one per line ('-': standard input); blank lines are skipped")
    g.add_argument("--from", dest="from_image", metavar="IMAGE",
                   help="take the prompt and every setting from a PNG that sdcpp saved; the options given "
                        "here change them (the same model and Generator options make the same pixels)")
    g.add_argument("-o", "--output", default="out.png", metavar="PATTERN",
                   help="where to save: .png (keeps the parameters), .jpg or .webp; {index} (0, 1, ... in this "
                        "run), {seed} and {prompt} (the prompt's first words) are replaced; with several images "
                        "and none of them, -{index} is added before the extension (default: out.png)")
    g.add_argument("--preview", metavar="PATTERN",
                   help="save a preview of the latent at every --preview-every-th step (--preview-mode says how "
                        "it is decoded): .png, .jpg or .webp; {step} and {index} (the first image of the batch "
                        "being sampled) are replaced; without {step} each preview replaces the last")
    add_options(g.add_argument_group("generation settings (sdcpp.GenerationParams)"), setting_options(), _SHORT)
    add_options(g.add_argument_group("input images"), image_options())
    add_options(g.add_argument_group("model and device (sdcpp.Generator)"), generator_options())
    g.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    diffusion_model = getattr(args, "diffusion_model", None)  # Generator options are only set when given
    model, positional_prompts = _model_and_prompts(args.model, args.prompts, diffusion_model)
    prompts = _prompts(positional_prompts, args.prompts_file)
    record = read_metadata(args.from_image) if args.from_image else None
    if not prompts and record is None:
        raise UsageError("give a PROMPT, --prompts-file FILE or --from IMAGE")
    inputs = _load_inputs(args)
    if record is not None:
        missing = [name for name in record.get("inputs", []) if name not in inputs]
        if missing:
            raise InvalidArgumentError(
                f"--from: {args.from_image} was made from {' and '.join(missing)}; give "
                f"{' and '.join('--' + n.replace('_', '-') + ' PATH' for n in missing)} as well"
            )
    base = GenerationParams.from_dict(record) if record is not None else None
    settings = given(args, setting_options())
    sized = [image for image in inputs.values() if isinstance(image, Image.Image)]  # references have any size
    if base is None and sized and not {"width", "height"} & settings.keys():
        settings["width"], settings["height"] = sized[0].size  # the input's own size
    display = make_display(getattr(args, "quiet", False))
    all_params = [_params(base, settings, inputs, prompt) for prompt in prompts or [base.prompt]]  # type: ignore[union-attr]
    outputs = _Outputs(args.output, sum(p.batch for p in all_params))
    previews = _Previews(args.preview, outputs) if args.preview else None
    with display, _showing_logs(display, getattr(args, "verbose", None) or 0, outputs.total) as tracker:
        start = time.monotonic()
        display.phase(f"loading {model or diffusion_model}")
        with Generator(model, **given(args, generator_options())) as gen:
            display.line(f"loaded {os.path.basename(gen.model)} ({gen.family}) on {gen.device} in "
                         f"{time.monotonic() - start:.1f} s")
            if record is not None and record.get("model") != os.path.basename(gen.model):
                display.line(f"sdcpp: warning: {args.from_image} was made with {record.get('model')}, not "
                             f"{os.path.basename(gen.model)}: the pixels will differ")
            for params in all_params:
                tracker.start(outputs.done, params.batch)
                callbacks = {"progress": tracker.progress, **({"preview": previews.save} if previews else {})}
                for image in gen.generate(dataclasses.replace(params, **callbacks)):
                    path = outputs.next(image.params.seed, image.params.prompt)
                    image.save(path, **_FORMATS[path.suffix.lower()])
                    _report(display, path, image.params.seed)
    return 0


def _model_and_prompts(model: Optional[str], prompts: Sequence[str],
                       diffusion_model: Optional[str]) -> tuple[Optional[str], list[str]]:
    """A DiT from component files has no MODEL: its first positional argument is then a prompt."""
    if diffusion_model is not None and model is not None and not Path(model).exists():
        return None, [model, *prompts]
    require_model(model, diffusion_model)
    return model, list(prompts)


def require_model(model: Optional[str], diffusion_model: Optional[str]) -> None:
    """A command that loads a model needs MODEL, or --diffusion-model with the other component files."""
    if model is None and diffusion_model is None:
        raise UsageError("give MODEL (a model file or diffusers folder), or --diffusion-model PATH with the "
                         "other component files")


def _prompts(given_prompts: Sequence[str], file: Optional[str]) -> list[str]:
    prompts = list(given_prompts)
    if file is not None:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        prompts += [line.strip() for line in text.splitlines() if line.strip()]
    return prompts


def _load_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """The input images the command line names, by field: an image, or a list of them (--ref-images)."""
    return {name: [_load_image(p, image_mode(name)) for p in path] if isinstance(path, list)
            else _load_image(path, image_mode(name)) for name, path in given(args, image_options()).items()}


def _load_image(path: str, mode: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert(mode)


def _params(base: Optional[GenerationParams], settings: dict[str, Any], inputs: dict[str, Any],
            prompt: str) -> GenerationParams:
    """The image's settings (``--from``) or the defaults, with those the command line gave."""
    values = {**settings, **inputs, "prompt": prompt}
    for name, value in values.items():
        if isinstance(value, KeyValues):  # --hires steps=10: a change to the image's value or the default's
            values[name] = value.apply(getattr(base if base is not None else GenerationParams(prompt), name))
    return dataclasses.replace(base, **values) if base is not None else GenerationParams(**values)


def _report(display: Display, path: Path, seed: int) -> None:
    """The file written: its name alone on stdout when that is a pipe (for scripts), with its seed otherwise."""
    if sys.stdout.isatty():
        display.result(f"{path} (seed {seed})")
    else:
        display.result(str(path))
        display.line(f"saved {path} (seed {seed})")


def _check_pattern(option: str, pattern: str, placeholders: Sequence[str]) -> set[str]:
    """The placeholders ``pattern`` uses, all of them known, and its extension one of _FORMATS."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
        unknown = fields - set(placeholders)
        if not unknown:
            pattern.format(**dict.fromkeys(placeholders, 0))
    except (ValueError, IndexError) as e:
        raise UsageError(f"{option}: {pattern!r} is not a valid pattern ({e})") from None
    if unknown:
        raise UsageError(f"{option}: unknown placeholder {{{sorted(unknown)[0]}}} in {pattern!r}; use "
                         f"{', '.join('{' + p + '}' for p in placeholders)} (and {{{{ }}}} for braces)")
    if Path(pattern).suffix.lower() not in _FORMATS:
        raise UsageError(f"{option}: {pattern!r} must end in {', '.join(_FORMATS)}")
    return fields


class _Outputs:
    """The output pattern -> one path per image of the run; a path this run wrote is never reused."""

    def __init__(self, pattern: str, total: int) -> None:
        fields = _check_pattern("-o", pattern, _PLACEHOLDERS)
        suffix = Path(pattern).suffix
        if not fields and total > 1:  # out.png -> out-0.png, out-1.png, ...
            pattern = f"{pattern[: -len(suffix)]}-{{index}}{suffix}"
        self.pattern, self.total, self.done = pattern, total, 0
        self.written: set[Path] = set()

    def next(self, seed: int, prompt: str) -> Path:
        path = Path(self.pattern.format(index=self.done, seed=seed, prompt=_slug(prompt)))
        stem, n = path, 2
        while path in self.written:  # e.g. {seed} for two prompts with one seed: out-42-2.png
            path = stem.with_name(f"{stem.stem}-{n}{stem.suffix}")
            n += 1
        self.written.add(path)
        self.done += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


class _Previews:
    """``--preview PATTERN``: each preview the engine sends, saved by the pattern."""

    def __init__(self, pattern: str, outputs: _Outputs) -> None:
        _check_pattern("--preview", pattern, _PREVIEW_PLACEHOLDERS)
        self.pattern, self.outputs = pattern, outputs

    def save(self, step: int, image: Image.Image) -> None:
        path = Path(self.pattern.format(step=step, index=self.outputs.done))
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, **_FORMATS[path.suffix.lower()])


def _slug(prompt: str) -> str:
    """The prompt's first words as a file name part: 'A cat, (oil:1.2)' -> 'a-cat-oil-1-2'."""
    return re.sub(r"\W+", "-", prompt.lower()).strip("-")[:48].rstrip("-") or "image"


class _showing_logs:
    """Engine log lines to the display (INFO with -v, DEBUG with -vv, else warnings), and to a Tracker;
    Python warnings (e.g. a device fallback) as one line each."""

    def __init__(self, display: Display, verbose: int, images: int) -> None:
        self.display, self.images = display, images
        self.level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
        self.logger = logging.getLogger("sdcpp")

    def __enter__(self) -> Tracker:
        self.tracker = Tracker(self.display, self.images)
        self.shown = _DisplayHandler(self.display, self.level)
        self.saved = (self.logger.level, self.logger.propagate, warnings.showwarning)
        self.logger.setLevel(min(self.level, logging.INFO))  # the tracker reads INFO lines
        self.logger.propagate = False
        self.logger.addHandler(self.tracker)
        self.logger.addHandler(self.shown)
        warnings.showwarning = lambda message, *rest: self.display.line(f"sdcpp: warning: {message}")
        return self.tracker

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.tracker)
        self.logger.removeHandler(self.shown)
        level, self.logger.propagate, warnings.showwarning = self.saved
        self.logger.setLevel(level)


class _DisplayHandler(logging.Handler):
    def __init__(self, display: Display, level: int) -> None:
        super().__init__(level)
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        self.display.line(record.getMessage())
