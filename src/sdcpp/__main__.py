"""Command line: ``sdcpp info``, ``sdcpp doctor``, ``sdcpp generate MODEL PROMPT``, ``sdcpp inspect PATH``
and ``sdcpp convert SRC DST``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Optional, Sequence

from . import Generator, SdcppError, self_test, system_info
from .doctor import report
from .tools_cli import add_tool_commands
from .names import samplers, schedulers
from .server import cli as server_cli


def _generate(args: argparse.Namespace) -> int:
    with Generator(args.model, device=args.device, threads=args.threads) as gen:
        print(gen, file=sys.stderr)
        images = gen.generate(
            args.prompt,
            args.negative_prompt,
            width=args.width,
            height=args.height,
            steps=args.steps,
            cfg_scale=args.cfg_scale,
            sampler=args.sampler,
            scheduler=args.scheduler,
            seed=args.seed,
            batch=args.batch,
            progress=lambda step, steps, seconds: print(
                f"step {step}/{steps} {seconds:.2f}s", file=sys.stderr
            ),
        )
    for i, image in enumerate(images):
        path = args.output if len(images) == 1 else args.output.replace(".png", f"-{i}.png")
        image.save(path)
        print(f"{path} seed={image.parameters['seed']}")
    return 0


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="sdcpp", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show the engine's log")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print versions, backends, devices and CPU features as JSON")
    d = sub.add_parser("doctor", help="list the devices and check their kernels against the CPU and numpy")
    d.add_argument("--device", help="check only this device (default: all)")
    g = sub.add_parser("generate", help="generate images from a prompt")
    g.add_argument("model", help="model file (.safetensors, .gguf, .ckpt) or diffusers folder")
    g.add_argument("prompt")
    g.add_argument("-n", "--negative-prompt", default="")
    g.add_argument("-o", "--output", default="out.png")
    g.add_argument("-W", "--width", type=int, default=512)
    g.add_argument("-H", "--height", type=int, default=512)
    g.add_argument("--steps", type=int, default=20)
    g.add_argument("--cfg-scale", type=float, default=7.0)
    g.add_argument("--sampler", choices=samplers())
    g.add_argument("--scheduler", choices=schedulers())
    g.add_argument("--seed", type=int, default=-1)
    g.add_argument("--batch", type=int, default=1)
    g.add_argument("--device", default="auto")
    g.add_argument("--threads", type=int)
    add_tool_commands(sub)
    server_cli.add_parser(sub)
    args = parser.parse_args(argv)
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
