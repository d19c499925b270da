"""How long the engine's CPU threads spin at a barrier before they sleep.

ggml's CPU backend runs each graph node inside an OpenMP team and meets at a barrier after every
node, over a thousand times per UNet evaluation. libgomp's default is to spin about 300,000 times
at a barrier before sleeping, which is right on an idle machine and ruinous on a busy one: when
another process (or a hypervisor) takes a core, the thread left running spins away its whole time
slice waiting for one that cannot run. Measured on two cores (benchmarks/results/contention-2-cores-of-16.md,
SD1.5 128x128): with nothing else running, 0.96 s per step with libgomp's default and 0.98 s with a
spin count of 1,000; with one busy process beside it, 2.1 s per step with 1,000 and more than 120 s
for 6 steps with the default. A short spin keeps the fast path and bounds the slow one.

libgomp reads its environment once, when it is loaded with the compiled module, so this runs
before ``sdcpp._core`` is imported. A user's own OpenMP settings are never overridden.
"""

from __future__ import annotations

from typing import MutableMapping

#: Spins before a thread at a barrier sleeps (libgomp's ``GOMP_SPINCOUNT``).
SPIN_COUNT = "1000"


def apply_defaults(environ: MutableMapping[str, str]) -> None:
    """Set ``GOMP_SPINCOUNT`` unless the user chose a spin count or a wait policy."""
    if "GOMP_SPINCOUNT" not in environ and "OMP_WAIT_POLICY" not in environ:
        environ["GOMP_SPINCOUNT"] = SPIN_COUNT
