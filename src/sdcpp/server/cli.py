"""``sdcpp serve MODEL``: load the model, then answer HTTP until Ctrl-C.

This module imports nothing of the server's stack at load time, so that the command line works
(and ``serve`` explains what to install) without the ``server`` extra.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import socket
import sys
from typing import Any

from ..cli_generate import require_model
from ..cli_options import add_options, generator_options, given
from ..errors import SdcppError
from .limits import Limits

__all__ = ["add_parser"]

# Command-line option -> (Limits field, how many of the field's unit one of the option's is, help).
_LIMIT_OPTIONS = {
    "--max-body-mb": ("max_body_bytes", 2**20, "largest request body, in MiB"),
    "--max-side": ("max_side", 1, "largest width or height to generate"),
    "--max-pixels": ("max_pixels", 1, "largest width x height to generate"),
    "--max-input-pixels": ("max_input_pixels", 1, "largest width x height of an uploaded image"),
    "--max-steps": ("max_steps", 1, "most sampling steps a request may ask for"),
    "--max-images": ("max_images", 1, "most images a request may ask for"),
    "--max-queued": ("max_queued", 1, "most requests waiting behind the running one; more get 503"),
}


def add_parser(commands: Any) -> None:
    """Add ``serve`` to the ``sdcpp`` command's subparsers; it runs through ``args.run(args)``."""
    p = commands.add_parser(
        "serve", help="serve a model over HTTP: the A1111 and OpenAI images APIs and a web page",
        description="Serve MODEL over HTTP (docs/server.md). Needs sdcpp's extra 'server': "
                    "pip install '.[server]' in sdcpp's checkout.",
    )
    p.add_argument("model", nargs="?",
                   help="model file (.safetensors, .gguf, .ckpt) or diffusers folder; may be left out with "
                        "--diffusion-model and the other component files")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860, A1111's; 0: any free port)")
    p.add_argument("--api-key", metavar="KEY", default=os.environ.get("SDCPP_API_KEY"),
                   help="require this key on every route (default: $SDCPP_API_KEY, else none)")
    limits = p.add_argument_group("limits on what a request may ask for")
    defaults = Limits()
    for option, (field, unit, text) in _LIMIT_OPTIONS.items():
        limits.add_argument(option, type=int, metavar="N", default=getattr(defaults, field) // unit,
                            help=f"{text} (default: %(default)s)")
    # The same options as sdcpp generate's: component files, --lora-dir (for <lora:NAME:W> in prompts), ...
    add_options(p.add_argument_group("model and device (sdcpp.Generator)"), generator_options())
    p.set_defaults(run=serve)


def _server_requirements() -> str:
    """The extra's requirements, as the installed sdcpp declares them (pyproject.toml)."""
    try:
        declared = importlib.metadata.requires("sdcpp") or []
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        declared = []
    names = [r.split(";")[0].strip() for r in declared if re.search(r"extra\s*==\s*['\"]server['\"]", r)]
    return " ".join(f"'{name}'" for name in names) or "fastapi uvicorn python-multipart"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as e:
        sock.close()
        raise SdcppError(f"cannot listen on {host}:{port}: {e}; choose another --host or --port") from None
    return sock


def serve(args: argparse.Namespace) -> int:
    try:
        from .app import create_app
        from .run import run
    except ImportError as e:
        raise SdcppError(
            f"sdcpp serve needs its extra 'server' ({e.name} is missing): pip install {_server_requirements()} "
            "(or pip install '.[server]' in sdcpp's checkout)"
        ) from None
    from .._malloc import fix_mmap_threshold
    from ..generator import Generator

    fix_mmap_threshold(os.environ)
    options = given(args, generator_options())
    require_model(args.model, options.get("diffusion_model"))
    limits = Limits(**{field: getattr(args, option[2:].replace("-", "_")) * unit
                       for option, (field, unit, _) in _LIMIT_OPTIONS.items()})
    sock = _bind(args.host, args.port)  # before the model loads: a busy port fails at once
    with sock, Generator(args.model, **options) as gen:
        app = create_app(gen, api_key=args.api_key, limits=limits)
        sock.listen(128)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"sdcpp: serving {gen.model} ({gen.family}, {gen.device}) on http://{shown}:{port}/",
              file=sys.stderr, flush=True)
        if not args.api_key and not (host.startswith("127.") or host == "::1"):
            print("sdcpp: warning: listening beyond this machine without --api-key", file=sys.stderr, flush=True)
        try:
            started = run(app, sock)
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled once it has shut down
            return 130
    return 0 if started else 1
