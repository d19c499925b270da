"""Command line: ``sdcpp info``, ``sdcpp doctor``, ``sdcpp generate MODEL PROMPT``, ``sdcpp inspect PATH``,
``sdcpp convert SRC DST`` and ``sdcpp serve MODEL``."""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import enum
import json
import logging
import sys
import typing
from typing import Any, Optional, Sequence

from . import GenerationParams, Generator, SdcppError, self_test, system_info
from .doctor import report
from .params import field_type, settings
from .server import cli as server_cli
from .tools_cli import add_tool_commands


def _generate(args: argparse.Namespace) -> int:
    params = GenerationParams(
        progress=lambda step, steps, seconds: print(f"step {step}/{steps} {seconds:.2f}s", file=sys.stderr),
        **{f.name: getattr(args, f.name) for f in settings()},
    )
    with Generator(args.model, device=args.device, threads=args.threads, lora_dir=args.lora_dir) as gen:
        print(gen, file=sys.stderr)
        images = gen.generate(params)
    for i, image in enumerate(images):
        path = args.output if len(images) == 1 else args.output.replace(".png", f"-{i}.png")
        image.save(path)
        print(f"{path} seed={image.params.seed}")
    return 0


# Short forms of a few options, as other Stable Diffusion command lines spell them.
_SHORT = {"negative_prompt": "-n", "width": "-W", "height": "-H"}


class _Weights(argparse.Action):
    """``NAME=WEIGHT ...`` -> {NAME: WEIGHT}."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        weights = {}
        for item in values:
            name, _, weight = item.rpartition("=")
            try:
                weights[name] = float(weight)
            except ValueError:
                parser.error(f"{option_string}: {item!r} is not NAME=WEIGHT")
        setattr(namespace, self.dest, weights)


def _add_settings(parser: argparse.ArgumentParser) -> None:
    """One option per setting of GenerationParams (the prompt is positional), with its help and default."""
    for f in settings():
        kind, _ = field_type(f.name)
        option = dict(help=f.metadata["help"], default=f.default)
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            option["choices"] = [m.value for m in kind]
        elif typing.get_origin(kind) is collections.abc.Mapping:
            option.update(nargs="+", action=_Weights, metavar="NAME=WEIGHT", default={})
        elif typing.get_origin(kind) is tuple:
            option.update(nargs="+", type=float)
        elif dataclasses.is_dataclass(kind):  # a group of settings: true (its defaults) or its fields as JSON
            option.update(type=json.loads, metavar="true|JSON")
        else:
            option["type"] = kind
        if f.name == "prompt":
            parser.add_argument("prompt", help=f.metadata["help"])
            continue
        flags = [_SHORT[f.name]] if f.name in _SHORT else []
        parser.add_argument(*flags, "--" + f.name.replace("_", "-"), **option)


def _doctor(device: Optional[str]) -> int:
    info = system_info()
    print(f"sdcpp {info['version']}, ggml {info['engine']['ggml_version']}, backends: {', '.join(info['backends'])}")
    for d in info["devices"]:
        tensor_api = {True: ", Metal 4 tensor API", False: ", no tensor API", None: ""}[d["tensor_api"]]
        print(f"  {d['name']:<6} {d['type']:<5} {d['description']} ({d['memory_total'] / 2**30:.1f} GiB{tensor_api})")
    print(f"Metal tensor API: {info['metal_tensor_api']}")
    checks = self_test(device)
    print(report(checks))
    failed = [c for c in checks if not c.passed]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    """The command line's parser; ``generate`` has one option per setting of GenerationParams."""
    top = argparse.ArgumentParser(prog="sdcpp", description=__doc__)
    top.add_argument("-v", "--verbose", action="store_true", help="show the engine's log")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print versions, backends, devices and CPU features as JSON")
    d = sub.add_parser("doctor", help="list the devices and check their kernels against the CPU and numpy")
    d.add_argument("--device", help="check only this device (default: all)")
    g = sub.add_parser("generate", help="generate images from a prompt")
    g.add_argument("model", help="model file (.safetensors, .gguf, .ckpt) or diffusers folder")
    _add_settings(g)
    g.add_argument("-o", "--output", default="out.png")
    g.add_argument("--device", default="auto")
    g.add_argument("--threads", type=int)
    g.add_argument("--lora-dir", help="folder of LoRA files, named in --loras or as <lora:name:weight> in the prompt")
    add_tool_commands(sub)
    server_cli.add_parser(sub)
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        if args.command == "info":
            print(json.dumps(system_info(), indent=2))
            return 0
        if args.command == "doctor":
            return _doctor(args.device)
        if hasattr(args, "run"):
            return args.run(args)
        return _generate(args)
    except SdcppError as e:
        print(f"sdcpp: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
