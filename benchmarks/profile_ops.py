"""Where one generation's time goes, op by op: UNet steps, VAE decode and text encoder.

    python benchmarks/profile_ops.py MODEL --device cpu --size 256 --steps 2

Runs one warm-up generation, then one with sdcpp.profile_ops() (every graph node timed alone), and
prints per-runner, per-op time, FLOPs and achieved rates, with the floor: the image's FLOPs over the
machine's matrix-multiply rate (torch's, where torch is installed, and ggml's best node).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import sdcpp
from sdcpp.profiling import OpProfile, node_flops


def torch_matmul_rate(device: str, threads: int | None) -> float | None:
    """GFLOP/s of a large matrix product in torch: float32 on the CPU, float16 on CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if threads:
        torch.set_num_threads(threads)
    cuda = device != "cpu"
    dev, dtype, n = ("cuda", torch.float16, 8192) if cuda else ("cpu", torch.float32, 2048)
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        a @ b
    if cuda:
        torch.cuda.synchronize()
    reps = 20 if cuda else 5
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    if cuda:
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--flash-attn", choices=("default", "on", "off"), default="default")
    p.add_argument("--threads", type=int, help="CPU threads, for sdcpp and torch's reference product "
                   "(default: sdcpp's, one per physical core)")
    p.add_argument("--json", type=Path, help="also write the records and summary here")
    a = p.parse_args()

    options = {} if a.flash_attn == "default" else {"flash_attn": a.flash_attn == "on"}
    gen = sdcpp.Generator(a.model, device=a.device, threads=a.threads, **options)
    settings = dict(width=a.size, height=a.size, steps=a.steps, cfg_scale=7.0, sampler="euler", seed=42)
    gen.generate("a lighthouse at dusk", **settings)
    t0 = time.perf_counter()
    gen.generate("a lighthouse at dusk", **settings)
    normal_s = time.perf_counter() - t0
    with sdcpp.profile_ops() as profile:
        gen.generate("a lighthouse at dusk", **settings)

    print(f"# {gen.family} on {gen.device}, {a.size}x{a.size}, {a.steps} steps, flash_attn={gen.flash_attn}")
    print(f"normal run {normal_s:.2f} s; profiled run (node by node) {profile.seconds:.2f} s of node time\n")
    print(profile.table(limit=25))
    runners: dict[str, OpProfile] = {}
    for r in profile.records:
        runners.setdefault(r["runner"], OpProfile()).records.append(r)
    mul_mats = [r for r in profile.records if r["op"] == "MUL_MAT" and r["us"] > 200]
    best_ggml = max((node_flops(r) / r["us"] / 1e3 for r in mul_mats), default=0.0)
    reference = torch_matmul_rate(a.device, a.threads)
    print("\n| runner | node s | GFLOP | GFLOP/s | floor at ggml's best matmul | floor at torch's matmul |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    summary = {}
    for name, part in runners.items():
        gflop = part.flops / 1e9
        floor_ggml = gflop / best_ggml if best_ggml else None
        floor_torch = gflop / reference if reference else None
        summary[name] = {"seconds": part.seconds, "gflop": gflop, "floor_ggml_s": floor_ggml, "floor_torch_s": floor_torch}
        print(f"| {name} | {part.seconds:.3f} | {gflop:.1f} | {gflop / part.seconds:.0f} | "
              f"{floor_ggml or 0:.3f} s | {floor_torch or 0:.3f} s |")
    print(f"\nbest ggml MUL_MAT node: {best_ggml:.0f} GFLOP/s; torch matmul: "
          f"{reference:.0f} GFLOP/s" if reference else f"\nbest ggml MUL_MAT node: {best_ggml:.0f} GFLOP/s")
    if a.json:
        a.json.write_text(json.dumps({"normal_s": normal_s, "summary": summary, "best_ggml_gflops": best_ggml,
                                      "torch_gflops": reference, "by_op": [vars(s) for s in profile.by_op()],
                                      "records": profile.records}) + "\n")


if __name__ == "__main__":
    main()
