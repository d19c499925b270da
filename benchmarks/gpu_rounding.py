"""How far two correct ways of computing the same image drift apart on a GPU: flash attention on
against off, and batched classifier-free guidance against two evaluations, on the random-weight SD1.5
of tests/models.py (4 steps, cfg 7, as tests/test_batched_cfg.py). Prints PSNR and the largest
difference per pixel, to set that test's bound per device from a measurement.

    python benchmarks/gpu_rounding.py MODEL --device cuda
"""

from __future__ import annotations

import argparse
import math

import numpy as np

import sdcpp


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--device", default="cuda")
    a = p.parse_args()
    images = {}
    for fa in (True, False):
        for batched in (True, False):
            with sdcpp.Generator(a.model, device=a.device, flash_attn=fa, batched_cfg=batched) as gen:
                for size in (64, 128):
                    for prompt in ("a lighthouse at dusk", "a lighthouse on a cliff at dusk, " * 12):
                        img = gen.generate(prompt, width=size, height=size, steps=4, seed=42, cfg_scale=7.0)[0]
                        images[fa, batched, size, len(prompt)] = np.asarray(img).astype(np.int16)
    print("| compared | size | prompt chars | PSNR dB | max diff |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for (fa, batched, size, n), img in images.items():
        if batched:
            other = images[fa, False, size, n]
            print(f"| batched vs separate, flash_attn={fa} | {size} | {n} | {psnr(img, other):.1f} | {np.abs(img - other).max()} |")
        if fa and not batched:
            other = images[False, False, size, n]
            print(f"| flash attention on vs off, separate | {size} | {n} | {psnr(img, other):.1f} | {np.abs(img - other).max()} |")


if __name__ == "__main__":
    main()
