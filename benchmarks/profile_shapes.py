"""One runner's products and convolutions from a `profile_ops.py --json` file, grouped by shape.

    python benchmarks/profile_shapes.py profile.json --runner unet --limit 20

Prints a Markdown table: each shape's node count, time, share of the runner's node time and rate.
Convolutions are named by kernel, channels and plane; products by their operands' shapes.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from sdcpp.profiling import node_flops


def shape_key(record: dict) -> str | None:
    srcs, op = record["srcs"], record["op"]
    if op == "CONV_2D":
        kw, kh, cin, cout = srcs[0]["shape"]
        w, h, _, n = srcs[1]["shape"]
        return f"CONV_2D {kw}x{kh}, {cin} → {cout} channels, {w}x{h} x {n} image{'s' if n > 1 else ''}"
    if op in ("MUL_MAT", "FLASH_ATTN_EXT"):
        a, b = srcs[0], srcs[1]
        return f"{op} {a['type']} a {a['shape'][:3]}, b {b['shape'][:3]}"
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", type=Path)
    p.add_argument("--runner", default="unet")
    p.add_argument("--limit", type=int, default=20)
    a = p.parse_args()

    records = [r for r in json.loads(a.json.read_text())["records"] if r["runner"] == a.runner]
    total_us = sum(r["us"] for r in records)
    groups: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for r in records:
        key = shape_key(r)
        if key:
            g = groups[key]
            g[0] += 1
            g[1] += r["us"]
            g[2] += node_flops(r)
    print(f"{a.runner}: {total_us / 1e6:.2f} s of node time\n")
    print("| shape | nodes | ms | share | GFLOP/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for key, (count, us, flops) in sorted(groups.items(), key=lambda kv: -kv[1][1])[: a.limit]:
        print(f"| {key} | {count} | {us / 1e3:.1f} | {100 * us / total_us:.1f}% | {flops / us / 1e3:.1f} |")


if __name__ == "__main__":
    main()
