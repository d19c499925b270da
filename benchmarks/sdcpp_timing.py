"""Time sdcpp alone: load, then steady-state seconds per image (after one warm-up image).

    python benchmarks/sdcpp_timing.py MODEL --width 512 --height 512 --steps 20 --runs 3 [--flash-attn]

Prints one JSON object. The peer comparison harness builds on these numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import sdcpp


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--flash-attn", action="store_true")
    p.add_argument("--save", help="save the last image here")
    a = p.parse_args()

    t0 = time.perf_counter()
    gen = sdcpp.Generator(a.model, device=a.device, flash_attn=a.flash_attn)
    load_s = time.perf_counter() - t0
    settings = dict(width=a.width, height=a.height, steps=a.steps, cfg_scale=7.0, sampler="euler", seed=42)
    gen.generate("a lighthouse at dusk", **settings)  # warm-up: first-use allocations and kernel loads
    times, step_times = [], []
    for _ in range(a.runs):
        steps: list[float] = []
        t0 = time.perf_counter()
        image = gen.generate(
            "a lighthouse at dusk", progress=lambda s, n, sec: s and steps.append(sec), **settings
        )[0]
        times.append(time.perf_counter() - t0)
        step_times.append(sum(steps))
    if a.save:
        image.save(a.save)
    print(json.dumps({
        "device": gen.device, "family": gen.family, "flash_attn": a.flash_attn, **settings,
        "load_s": round(load_s, 3),
        "image_s": [round(t, 3) for t in times], "image_s_median": round(statistics.median(times), 3),
        "sampling_s_median": round(statistics.median(step_times), 3),
    }))


if __name__ == "__main__":
    main()
