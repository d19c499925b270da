"""Seconds per image of one sdcpp build, for interleaved runs of two builds on a noisy machine.

    for i in 1 2 3; do
        venv-new/bin/python benchmarks/image_times.py MODEL --size 256
        venv-old/bin/python benchmarks/image_times.py MODEL --size 256
    done

compare.py runs each contender once, so on a shared 2-core VM whose speed drifts by 10-15 % over
minutes, a change of that size can hide between two runs; alternating the builds puts the drift on
both. One warm-up image, then ``--images`` timed ones (Euler, cfg 7, seed 42), printed on one line.
"""

from __future__ import annotations

import argparse
import time

import sdcpp


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--threads", type=int, help="CPU threads (default: one per physical core)")
    a = p.parse_args()
    gen = sdcpp.Generator(a.model, device=a.device, threads=a.threads)
    settings = dict(width=a.size, height=a.size, steps=a.steps, cfg_scale=7.0, sampler="euler", seed=42)
    gen.generate("a lighthouse", **settings)
    times = []
    for _ in range(a.images):
        t0 = time.perf_counter()
        gen.generate("a lighthouse", **settings)
        times.append(time.perf_counter() - t0)
    print(f"{sdcpp.__file__}: " + " ".join(f"{t:.2f}" for t in times), flush=True)


if __name__ == "__main__":
    main()
