"""Single CPU convolutions of the SD 1.5 UNet's shapes (two images, as batched CFG makes them), timed alone.

    python benchmarks/conv_times.py --threads 2 --repeats 7

Each convolution runs through `sdcpp.ops.conv_2d` with float16 weights, as the UNet's; the time is the
op's own on the device (`_testing.last_op_seconds`), without copying the arrays in and out, after an
untimed run on the same backend (`_testing.set_op_warmups`: its work buffer touched, as in a Generator).
Prints the median of the repeats after the first, and the rate. Alternating runs of two builds or settings is how
an engine patch for one shape is measured (RESULTS.md). With `--torch`, torch's float32 convolution of the
same arrays on as many threads is timed beside it (what diffusers runs on a CPU), and the ratio printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from sdcpp import ops
from sdcpp._core import _testing

# (plane side, input channels, output channels): SD 1.5 at 256x256 has 32x32 to 4x4 latents
SHAPES = [(32, 320, 320), (16, 640, 640), (16, 1280, 1280), (8, 1280, 1280), (4, 1280, 1280), (4, 2560, 1280)]


def shape(text: str) -> tuple[int, int, int]:
    side, cin, cout = (int(v) for v in text.split(":"))
    return side, cin, cout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: the CPU backend's default, 4)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--shape", action="append", type=shape, dest="shapes",
                   help="SIDE:IN:OUT, e.g. 8:2560:1280 (repeatable; default: the UNet's usual ones)")
    p.add_argument("--torch", action="store_true", help="time torch's float32 convolution beside it")
    a = p.parse_args()

    _testing.set_cpu_op_threads(a.threads)
    _testing.set_op_warmups(1)
    rng = np.random.default_rng(0)
    head = "| convolution | ms | GFLOP/s |" + (" torch ms | torch GFLOP/s | sdcpp / torch |" if a.torch else "")
    print(head + "\n|" + " --- |" + " ---: |" * (head.count("|") - 2))
    for side, cin, cout in a.shapes or SHAPES:
        x = rng.standard_normal((2, cin, side, side)).astype(np.float32)
        w = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
        times = []
        for _ in range(a.repeats):
            ops.conv_2d(x, w, padding=1, weight_dtype="float16", method="direct", device="cpu")
            times.append(_testing.last_op_seconds())
        s = statistics.median(times[1:])
        flops = 2 * 9 * cin * cout * side * side * 2
        line = f"| 3x3, {cin} → {cout}, {side}x{side} x 2 | {s * 1e3:.1f} | {flops / s / 1e9:.0f} |"
        if a.torch:
            import torch

            tx, tw = torch.from_numpy(x), torch.from_numpy(w)
            t = torch_median(a.threads, a.repeats, lambda: torch.nn.functional.conv2d(tx, tw, padding=1))
            line += f" {t * 1e3:.1f} | {flops / t / 1e9:.0f} | {s / t:.2f} |"
        print(line)


def torch_median(threads: int, repeats: int, call) -> float:
    """The median time of `call()` over the repeats after the first, torch on `threads` threads (0: its default)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


if __name__ == "__main__":
    main()
