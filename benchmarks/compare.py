"""sdcpp against the engine's own CLI, the ctypes peer (stable-diffusion-cpp-python) and diffusers,
on the same random-weight model and settings, each in its own process, one after another.

    python benchmarks/compare.py --device cpu  --family sd15 --size 256 --steps 4
    python benchmarks/compare.py --device cuda --family sd15 --size 512 --steps 20

Writes benchmarks/results/<name>.json, .md (a table, ratios to diffusers measured in the same run)
and .svg (seconds per image). Contenders that are not installed are reported as skipped: the peer
is `pip install stable-diffusion-cpp-python==0.4.7`, the CLI is built with
`CMAKE_ARGS="-DSDCPP_BUILD_CLI=ON"` (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from benchmarks.report import markdown, svg  # noqa: E402
from tests import models, models_sdxl  # noqa: E402

CONTENDERS = ("sdcpp", "cli", "peer", "diffusers")
# family -> writers of the single file and of the diffusers folder, with the same weights
WRITERS = {
    "sd15": (models.write_sd15_single_file, models.write_sd15_diffusers),
    "sdxl": (models_sdxl.write_sdxl_single_file, models_sdxl.write_sdxl_diffusers),
}


def find_cli() -> str | None:
    found = sorted(glob.glob(str(REPO / "build" / "*" / "bin" / "sd-cli")))
    return found[-1] if found else None


def make_models(family: str, folder: Path) -> tuple[Path, Path]:
    """The single file (sdcpp, CLI, peer) and diffusers folder (diffusers) of one set of weights."""
    folder.mkdir(parents=True, exist_ok=True)
    write_file, write_folder = WRITERS[family]
    return (models.build_once(folder / f"{family}.safetensors", write_file),
            models.build_once(folder / f"{family}-diffusers", write_folder))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} logical CPUs"
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
        text += f", {gpu}"
    except (OSError, subprocess.CalledProcessError, IndexError):
        pass
    return text


def commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return out or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_contender(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(HERE / "contenders.py"), name, "--json", json.dumps(settings)],
                          capture_output=True, text=True, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"skipped": " / ".join(tail) or f"exit status {proc.returncode}"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda", "metal"), default="cpu",
                   help="metal: sdcpp on Metal, diffusers on torch's mps (not yet run on a Mac)")
    p.add_argument("--family", choices=sorted(WRITERS), default="sd15")
    p.add_argument("--size", type=int, default=256, help="width and height")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--cfg", type=float, default=7.0)
    p.add_argument("--runs", type=int, default=2, help="steady-state images after one cold image")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: each tool's default)")
    p.add_argument("--flash-attn", choices=("default", "on", "off"), default="default",
                   help="sdcpp's flash attention; the CLI and the peer get the setting sdcpp ends up with")
    p.add_argument("--batched-cfg", choices=("default", "on", "off"), default="default",
                   help="sdcpp's batched classifier-free guidance (docs/batched-cfg.md); the CLI always batches, "
                        "the peer never does")
    p.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated subset of " + ",".join(CONTENDERS))
    p.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "sdcpp-bench-models")
    p.add_argument("--cli", default=find_cli(), help="the engine's sd-cli (default: the one in build/)")
    p.add_argument("--name", help="output file name (default: family-device-size-date)")
    a = p.parse_args()

    single, folder = make_models(a.family, a.models)
    settings: dict[str, Any] = {
        "model_file": str(single), "model_dir": str(folder), "family": a.family, "device": a.device,
        "width": a.size, "height": a.size, "steps": a.steps, "cfg": a.cfg, "seed": 42, "runs": a.runs,
        "threads": a.threads or None, "flash_attn": {"default": None, "on": True, "off": False}[a.flash_attn],
        "batched_cfg": {"default": None, "on": True, "off": False}[a.batched_cfg],
        "cli": a.cli, "repo": str(REPO), "scratch": tempfile.mkdtemp(prefix="sdcpp-bench-"),
    }
    results: dict[str, dict[str, Any]] = {}
    for name in a.only.split(","):
        if name == "cli" and not a.cli:
            results[name] = {"skipped": "no sd-cli: build with -DSDCPP_BUILD_CLI=ON or pass --cli"}
            continue
        print(f"{name} ...", file=sys.stderr, flush=True)
        results[name] = run_contender(name, settings)
        if name == "sdcpp" and "settings" in results[name] and settings["flash_attn"] is None:
            # The others run with the flash attention setting sdcpp chose by default.
            settings["flash_attn"] = "flash_attn=True" in results[name]["settings"]
        print(f"  {json.dumps(results[name])}", file=sys.stderr, flush=True)

    run = {
        "date": datetime.date.today().isoformat(), "commit": commit(), "machine": machine(),
        "family": a.family, "device": a.device, "size": a.size, "steps": a.steps, "cfg": a.cfg,
        "runs": a.runs, "threads": a.threads, "results": results,
    }
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    name = a.name or f"{a.family}-{a.device}-{a.size}-{run['date']}"
    (out_dir / f"{name}.json").write_text(json.dumps(run, indent=2) + "\n")
    (out_dir / f"{name}.md").write_text(markdown(run) + "\n")
    (out_dir / f"{name}.svg").write_text(svg(run))
    print(markdown(run))


if __name__ == "__main__":
    main()
