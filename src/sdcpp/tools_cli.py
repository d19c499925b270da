"""The ``inspect``, ``convert`` and ``upscale`` subcommands of the command line (``python -m sdcpp``)."""

from __future__ import annotations

import argparse
import json
import sys

from PIL import Image

from .convert import convert
from .errors import InvalidArgumentError
from .inspect import inspect
from .upscaler import Upscaler

__all__ = ["add_tool_commands"]


def _inspect(args: argparse.Namespace) -> int:
    parts = {k: getattr(args, k) for k in ("diffusion_model", "vae", "clip_l", "clip_g", "t5xxl", "llm")}
    print(json.dumps(inspect(args.path, **parts).to_dict(), indent=2, default=str))
    return 0


def _convert(args: argparse.Namespace) -> int:
    def progress(done: int, total: int, seconds: float) -> None:
        print(f"\r{done}/{total} tensors", end="", file=sys.stderr, flush=True)

    out = convert(args.src, args.dst, args.type, args.rules, overwrite=args.overwrite, progress=progress, vae=args.vae,
                  quantize_kernels=args.quantize_kernels)
    print(file=sys.stderr)
    print(out)
    return 0


def _upscale(args: argparse.Namespace) -> int:
    try:
        with Image.open(args.image) as opened:
            image = opened.convert("RGB")  # the network sees colour only: alpha and palettes are dropped
    except OSError as e:
        raise InvalidArgumentError(f"image: cannot read '{args.image}' as an image: {e}") from None
    with Upscaler(args.model, device=args.device, threads=args.threads, tile_size=args.tile_size) as upscaler:
        upscaler.upscale(image).save(args.output)
        print(f"{args.output} {image.width * upscaler.factor}x{image.height * upscaler.factor}")
    return 0


def add_tool_commands(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser("inspect", help="describe a model from its headers (family, components, types) as JSON")
    i.add_argument("path", nargs="?", help="model file (.safetensors, .gguf, .ckpt) or diffusers folder")
    for part in ("diffusion_model", "vae", "clip_l", "clip_g", "t5xxl", "llm"):
        i.add_argument(f"--{part.replace('_', '-')}", dest=part, help=f"separate {part} file")
    i.set_defaults(run=_inspect)
    c = sub.add_parser("convert", help="write a model as GGUF in another weight type")
    c.add_argument("src", help="model file or diffusers folder")
    c.add_argument("dst", help="output file (.gguf)")
    c.add_argument("--type", default="q8_0", help="weight type (default q8_0): f16, q8_0, q5_K, q4_K, ...")
    c.add_argument("--rules", help="per-tensor types, 'regex=type,...' (first match wins)")
    c.add_argument("--vae", help="a separate VAE to include")
    c.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    c.add_argument("--no-quantize-kernels", dest="quantize_kernels", action="store_false",
                   help="keep convolution kernels as they are: a file other stable-diffusion.cpp builds read (larger)")
    c.set_defaults(run=_convert)
    u = sub.add_parser("upscale", help="enlarge an image with an ESRGAN model (Real-ESRGAN x4plus, ESRGAN 1x/2x/4x)")
    u.add_argument("model", help="ESRGAN model file (.safetensors, .pth)")
    u.add_argument("image", help="image file to enlarge")
    u.add_argument("-o", "--output", default="upscaled.png", help="where to write the result (default upscaled.png)")
    u.add_argument("--device", default="auto")
    u.add_argument("--threads", type=int)
    u.add_argument("--tile-size", type=int, default=128, help="tile size in pixels (default 128): less is less memory")
    u.set_defaults(run=_upscale)
