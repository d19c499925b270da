"""Seconds per sampling step on the CPU, as it is and with another process busy on one core, for
libgomp's default barrier spinning and for sdcpp's shorter default (src/sdcpp/_openmp.py).

    python benchmarks/contention.py [--size 128] [--steps 6] [--threads N]
    taskset -c 0,1 python benchmarks/contention.py --threads 2   # two cores of a larger machine

Each case runs in its own process on the random-weight SD1.5 model (built once into
SDCPP_TEST_MODELS or a temporary folder); the busy process is a Python loop. Writes
benchmarks/results/contention-<cpu-count>cpu.json and .md, ratios to sdcpp's default with no load added.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.compare import machine  # noqa: E402
from tests import models  # noqa: E402

# GOMP_SPINCOUNT values: libgomp's own default when nothing is set, sdcpp's, and sleeping at once.
SETTINGS = {"libgomp default": "300000", "sdcpp default": "1000", "passive": "0"}

CHILD = """
import json, sys, sdcpp
gen = sdcpp.Generator(sys.argv[1], device="cpu", threads=int(sys.argv[4]) or None)
size, steps = int(sys.argv[2]), int(sys.argv[3])
times = []
gen.generate("x", seed=1, width=size, height=size, steps=steps, progress=lambda s, n, t: times.append(t))
print(json.dumps(times[2:]))  # step 1 carries the first call's warm-up
"""


def busy() -> None:
    while True:
        pass


def seconds_per_step(model: Path, spin: str, size: int, steps: int, threads: int, timeout: float) -> float | None:
    env = {**os.environ, "GOMP_SPINCOUNT": spin}
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(model), str(size), str(steps), str(threads)],
                             capture_output=True, text=True, env=env, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    return statistics.median(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=0, help="engine threads (0: its default)")
    parser.add_argument("--timeout", type=float, default=600, help="per case; a case past it is reported as such")
    args = parser.parse_args()
    # The test suite's cache folder for this version of tests/models.py (tests/conftest.py).
    key = hashlib.sha256(Path(models.__file__).read_bytes()).hexdigest()[:12]
    folder = Path(os.environ.get("SDCPP_TEST_MODELS") or tempfile.mkdtemp()) / key
    folder.mkdir(parents=True, exist_ok=True)
    model = models.build_once(folder / "sd15.safetensors", models.write_sd15_single_file)

    rows = []
    load_before = os.getloadavg()[0]
    for load in ("none added", "one busy process"):
        hog = None
        if load != "none added":
            hog = multiprocessing.Process(target=busy, daemon=True)
            hog.start()
        try:
            for name, spin in SETTINGS.items():
                rows.append({"load": load, "setting": name, "GOMP_SPINCOUNT": spin,
                             "s_per_step": seconds_per_step(model, spin, args.size, args.steps, args.threads, args.timeout)})
                print(rows[-1], flush=True)
        finally:
            if hog:
                hog.terminate()
                hog.join()

    base = next(r["s_per_step"] for r in rows if r["load"] == "none added" and r["setting"] == "sdcpp default")
    lines = [f"# Barrier spinning on a busy CPU ({machine()}, {os.cpu_count()} CPUs, SD1.5 "
             f"{args.size}x{args.size}, median s/step of steps 2-{args.steps}; load average "
             f"{load_before:.1f} before the runs)", "",
             "| load added | setting | GOMP_SPINCOUNT | s/step | vs sdcpp default, none added |", "|---|---|---:|---:|---:|"]
    for r in rows:
        s = r["s_per_step"]
        cell, ratio = (f"{s:.2f}", f"{s / base:.1f}x") if s is not None else (f"> {args.timeout:.0f} s in all", "-")
        lines.append(f"| {r['load']} | {r['setting']} | {r['GOMP_SPINCOUNT']} | {cell} | {ratio} |")
    out = HERE / "results" / f"contention-{os.cpu_count()}cpu"
    out.with_suffix(".json").write_text(json.dumps({"size": args.size, "steps": args.steps, "rows": rows}, indent=1))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
