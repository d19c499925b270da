"""Where diffusers' UNet time goes, by torch op: the peer's side of `profile_ops.py`.

    python benchmarks/torch_profile.py MODEL_DIR --family sdxl --size 512 --threads 16

Runs the diffusers folder's UNet on a batch of two (classifier-free guidance, as the pipeline does) in
float32 on the CPU: two untimed passes, then timed ones, then one under torch.profiler. Prints the
op-by-op self time grouped as profile_ops.py groups ggml's nodes (convolutions, products, attention,
norms, the rest), and the convolutions and products by input shape, so the two engines' tables can be
read side by side.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

GROUPS = {  # torch op -> the ggml node it corresponds to
    "aten::mkldnn_convolution": "CONV_2D", "aten::_convolution": "CONV_2D", "aten::convolution": "CONV_2D",
    "aten::addmm": "MUL_MAT", "aten::mm": "MUL_MAT", "aten::bmm": "MUL_MAT", "aten::baddbmm": "MUL_MAT",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "FLASH_ATTN_EXT",
    "aten::native_group_norm": "GROUP_NORM", "aten::native_layer_norm": "NORM",
}


def unet_inputs(family: str, size: int, torch):
    latent = size // 8
    x = torch.randn(2, 4, latent, latent)
    t = torch.tensor([999.0, 999.0])
    if family == "sdxl":
        extra = {"added_cond_kwargs": {"text_embeds": torch.randn(2, 1280),
                                       "time_ids": torch.tensor([[size, size, 0, 0, size, size]] * 2).float()}}
        return x, t, torch.randn(2, 77, 2048), extra
    return x, t, torch.randn(2, 77, 768), {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path, help="a diffusers folder (its unet/ is loaded)")
    p.add_argument("--family", choices=("sd15", "sdxl"), default="sd15")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=0, help="torch's threads (0: torch's default)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", type=Path)
    a = p.parse_args()

    import torch
    from diffusers import UNet2DConditionModel

    if a.threads:
        torch.set_num_threads(a.threads)
    unet = UNet2DConditionModel.from_pretrained(a.model_dir / "unet", torch_dtype=torch.float32).eval()
    x, t, context, extra = unet_inputs(a.family, a.size, torch)
    with torch.inference_mode():
        for _ in range(2):
            unet(x, t, encoder_hidden_states=context, **extra)
        times = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            unet(x, t, encoder_hidden_states=context, **extra)
            times.append(time.perf_counter() - t0)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
            unet(x, t, encoder_hidden_states=context, **extra)

    times.sort()
    total = 0.0
    groups: dict[str, float] = defaultdict(float)
    ops: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        us = ev.self_cpu_time_total
        total += us
        groups[GROUPS.get(ev.key, "other")] += us
        ops[ev.key] += us
    print(f"# diffusers UNet, {a.family} {a.size}x{a.size}, batch 2, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"one pass: {times[len(times) // 2]:.3f} s (median of {a.runs}); profiled: {total / 1e6:.3f} s of op self time\n")
    print("| group | s | share |\n| --- | ---: | ---: |")
    for name, us in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {us / 1e6:.3f} | {100 * us / total:.1f}% |")
    print("\n| torch op | s | share |\n| --- | ---: | ---: |")
    for name, us in sorted(ops.items(), key=lambda kv: -kv[1])[: a.limit]:
        print(f"| {name} | {us / 1e6:.3f} | {100 * us / total:.1f}% |")
    shapes = []
    for ev in prof.key_averages(group_by_input_shape=True):
        if GROUPS.get(ev.key) in ("CONV_2D", "MUL_MAT", "FLASH_ATTN_EXT"):
            shapes.append((ev.self_cpu_time_total, ev.count, ev.key, str(ev.input_shapes[:3])))
    shapes.sort(reverse=True)
    print("\n| torch op, input shapes | calls | ms | share |\n| --- | ---: | ---: | ---: |")
    for us, count, key, inputs in shapes[: a.limit]:
        print(f"| {key} {inputs} | {count} | {us / 1e3:.1f} | {100 * us / total:.1f}% |")
    if a.json:
        a.json.write_text(json.dumps({"pass_s": times, "groups": groups, "ops": ops,
                                      "shapes": [list(s) for s in shapes]}) + "\n")


if __name__ == "__main__":
    main()
