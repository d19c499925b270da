"""Peak memory of one large image's VAE decode, tiled and not (docs/workflows.md, "VAE tiling").

Each variant runs in a fresh child process (so that freed memory of the other does not count), which
generates one image in 1 step without classifier-free guidance (cfg_scale 1: one UNet evaluation), and
reports the process's peak resident memory after loading and after generating. The decode's share is
the difference; the UNet's step at this size needs less than the untiled decode, which the tiled
numbers show.

    python -m benchmarks.vae_tiling_memory MODEL --size 768 [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _child(model: str, size: int, tiled: bool, device: str) -> None:
    import sdcpp

    def peak_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    with sdcpp.Generator(model, device=device) as gen:
        loaded = peak_mib()
        start = time.monotonic()
        gen.generate("a lighthouse", width=size, height=size, steps=1, cfg_scale=1.0, seed=1,
                     vae_tiling=tiled)
        print(json.dumps({"tiled": tiled, "size": size, "loaded_mib": loaded, "peak_mib": peak_mib(),
                          "seconds": time.monotonic() - start}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", choices=["tiled", "whole"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.model, args.size, args.child == "tiled", args.device)
        return
    for variant in ("whole", "tiled"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.vae_tiling_memory", args.model, "--size",
                              str(args.size), "--device", args.device, "--child", variant],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{args.size}x{args.size} {variant:5}: peak {r['peak_mib']:.0f} MiB, "
              f"{r['peak_mib'] - r['loaded_mib']:.0f} MiB above the loaded model, {r['seconds']:.1f} s")


if __name__ == "__main__":
    main()
