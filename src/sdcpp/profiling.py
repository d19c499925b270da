"""Where a generation's time goes: per-op timings of the engine's graphs.

    with sdcpp.profile_ops() as profile:
        gen.generate("a lighthouse", steps=1)
    print(profile.table())

While profiling, every graph runs one node at a time with a synchronisation after each, so the
total is slower than a normal run (CUDA loses its kernel fusion and graphs); the shares show
where the time goes, not how fast a normal run is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import _core


def node_flops(record: dict[str, Any]) -> int:
    """Floating-point operations of one node (multiply and add count as two); 0 for ops that only
    move or rescale data, whose cost is their bytes."""
    op, out, srcs = record["op"], record["out"]["shape"], record["srcs"]
    if op == "MUL_MAT":
        return 2 * srcs[0]["shape"][0] * math.prod(out)
    if op == "FLASH_ATTN_EXT":
        head_dim, queries, heads, batch = srcs[0]["shape"]
        keys, value_dim = srcs[1]["shape"][1], srcs[2]["shape"][0]
        return 2 * (head_dim + value_dim) * queries * keys * heads * batch
    if op == "CONV_2D":
        kw, kh, cin, _ = srcs[0]["shape"]
        return 2 * kw * kh * cin * math.prod(out)
    return 0


@dataclass
class OpStats:
    """The nodes of one op kind in one runner ("unet", "vae", ...), taken together."""

    runner: str
    op: str
    count: int = 0
    seconds: float = 0.0
    flops: int = 0
    bytes: int = 0

    @property
    def gflops_per_s(self) -> float:
        return self.flops / self.seconds / 1e9 if self.seconds else 0.0

    @property
    def gbytes_per_s(self) -> float:
        return self.bytes / self.seconds / 1e9 if self.seconds else 0.0


@dataclass
class OpProfile:
    """The nodes run while :func:`profile_ops` was active, in order (see ``records``)."""

    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(r["us"] for r in self.records) / 1e6

    @property
    def flops(self) -> int:
        return sum(node_flops(r) for r in self.records)

    def by_op(self) -> list[OpStats]:
        """Time, FLOPs and bytes per (runner, op), the costliest first."""
        stats: dict[tuple[str, str], OpStats] = {}
        for r in self.records:
            s = stats.setdefault((r["runner"], r["op"]), OpStats(r["runner"], r["op"]))
            s.count += 1
            s.seconds += r["us"] / 1e6
            s.flops += node_flops(r)
            s.bytes += r["bytes"]
        return sorted(stats.values(), key=lambda s: s.seconds, reverse=True)

    def table(self, limit: int = 20) -> str:
        """The costliest ops as a markdown table."""
        total = self.seconds or 1.0
        lines = [
            "| runner | op | nodes | ms | share | GFLOP | GFLOP/s | GB/s |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for s in self.by_op()[:limit]:
            lines.append(
                f"| {s.runner} | {s.op} | {s.count} | {s.seconds * 1e3:.1f} | {s.seconds / total:.1%} | "
                f"{s.flops / 1e9:.1f} | {s.gflops_per_s:.0f} | {s.gbytes_per_s:.1f} |"
            )
        return "\n".join(lines)


@contextmanager
def profile_ops() -> Iterator[OpProfile]:
    """Record every graph node the engine runs inside the ``with`` block, in any Generator.

    The profile is process-wide: generations in other threads are recorded too.
    """
    profile = OpProfile()
    _core.start_op_profile()
    try:
        yield profile
    finally:
        profile.records = _core.stop_op_profile()
