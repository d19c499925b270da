"""Seconds per video for the random-weight Wan 2.1 T2V 1.3B of tests/models_wan.py (the time does not
depend on the weights' values): ``python benchmarks/wan_video.py --device cuda --width 832 --height 480
--frames 33 --steps 20``. Prints the engine's sampling and VAE decode times and the whole call's."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sdcpp  # noqa: E402
from tests import models, models_wan  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", type=Path, default=Path("/tmp/sdcpp-bench-models/wan"))
    for name, default in (("width", 832), ("height", 480), ("frames", 33), ("steps", 20), ("runs", 2)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--cfg-scale", type=float, default=6.0)
    args = parser.parse_args()
    args.models.mkdir(parents=True, exist_ok=True)
    files = {
        "diffusion_model": models.build_once(args.models / "wan2.1-t2v-1.3b-q4_0.gguf", models_wan.write_wan_t2v),
        "vae": models.build_once(args.models / "wan_2.1_vae.safetensors", models_wan.write_wan_vae),
    }
    timings = logging.StreamHandler(sys.stdout)  # the engine's own timings of each stage
    timings.addFilter(lambda r: "taking" in r.getMessage() or "completed in" in r.getMessage())
    logging.getLogger("sdcpp").addHandler(timings)
    logging.getLogger("sdcpp").setLevel(logging.INFO)
    with sdcpp.Generator(**files, device=args.device) as gen:
        print(f"{gen!r}, flash attention {gen.flash_attn}", flush=True)
        for run in range(args.runs):
            start = time.perf_counter()
            video = gen.generate_video("x", seed=run, width=args.width, height=args.height, frames=args.frames,
                                       steps=args.steps, cfg_scale=args.cfg_scale)
            print(f"run {run}: {len(video)} frames of {video[0].size[0]}x{video[0].size[1]}, "
                  f"{args.steps} steps, cfg {args.cfg_scale}: {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
