"""Single CPU linear layers of the SD 1.5 UNet's shapes at 256x256, or SDXL's at 512x512 (two images, as
batched CFG makes them).

    python -m benchmarks.linear_times --threads 2 --repeats 7 [--torch] [--family sdxl]

Each product runs through `sdcpp.ops.mul_mat` with float16 weights, as the UNet's; the time is the op's
own (`_testing.last_op_seconds`), after an untimed run on the same backend (`_testing.set_op_warmups`), so
that the first touch of its work buffer is not timed. With `--torch`, torch's float32 `linear` of the same
arrays on as many threads is timed beside it (what diffusers runs on a CPU). Prints medians of the repeats
after the first.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from benchmarks.conv_times import torch_median
from sdcpp import ops
from sdcpp._core import _testing

# (tokens, k, outputs): attention projections, GEGLU's input and output, per latent size 32x32 to 8x8
SHAPES = [
    (2048, 320, 320), (2048, 320, 2560), (2048, 1280, 320),
    (512, 640, 640), (512, 640, 5120), (512, 2560, 640),
    (128, 1280, 1280), (128, 1280, 10240), (128, 5120, 1280),
]
# SDXL at 512x512: the same at 32x32 and 16x16 latents (its 16x16 blocks hold most of its UNet's
# products), and the cross-attention's keys and values from 2 x 77 text tokens of 2048 values
SDXL_SHAPES = [
    (2048, 640, 640), (2048, 640, 5120), (2048, 2560, 640),
    (512, 1280, 1280), (512, 1280, 10240), (512, 5120, 1280),
    (154, 2048, 640), (154, 2048, 1280),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: the CPU backend's default, 4)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--torch", action="store_true", help="time torch's float32 linear beside it")
    p.add_argument("--family", choices=["sd15", "sdxl"], default="sd15", help="whose UNet's shapes")
    a = p.parse_args()

    _testing.set_cpu_op_threads(a.threads)
    _testing.set_op_warmups(1)
    rng = np.random.default_rng(0)
    head = "| tokens x k → outputs | ms | GFLOP/s |" + (" torch ms | torch GFLOP/s | sdcpp / torch |" if a.torch else "")
    print(head + "\n|" + " --- |" + " ---: |" * (head.count("|") - 2))
    for n, k, m in SDXL_SHAPES if a.family == "sdxl" else SHAPES:
        x = rng.standard_normal((n, k)).astype(np.float32)
        w = rng.standard_normal((m, k)).astype(np.float32)
        times = []
        for _ in range(a.repeats):
            ops.mul_mat(w, x, a_dtype="float16", device="cpu")
            times.append(_testing.last_op_seconds())
        s = statistics.median(times[1:])
        flops = 2 * n * k * m
        line = f"| {n} x {k} → {m} | {s * 1e3:.2f} | {flops / s / 1e9:.0f} |"
        if a.torch:
            import torch

            tx, tw = torch.from_numpy(x), torch.from_numpy(w)
            t = torch_median(a.threads, a.repeats, lambda: torch.nn.functional.linear(tx, tw))
            line += f" {t * 1e3:.2f} | {flops / t / 1e9:.0f} | {s / t:.2f} |"
        print(line)


if __name__ == "__main__":
    main()
