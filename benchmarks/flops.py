"""FLOPs of one SD1.5 image's stages, counted by torch's FlopCounterMode on diffusers' modules.

    python benchmarks/flops.py > benchmarks/results/flops-sd15.md

The modules are built from the test models' configs on torch's meta device: nothing is allocated or
computed, so the count takes seconds on any machine and does not depend on it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from tests import models  # noqa: E402

SIZES = (256, 512)


def count(module: torch.nn.Module, *args: object) -> int:
    """FLOPs of one call, inputs and weights on the meta device."""
    with FlopCounterMode(display=False) as counter, torch.device("meta"):
        module(*args)
    return counter.get_total_flops()


def main() -> None:
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(models._UNET_CONFIG)
        vae = AutoencoderKL.from_config(models._VAE_CONFIG)
    print(f"# SD1.5 FLOPs per image stage (torch {torch.__version__} FlopCounterMode, `benchmarks/flops.py`)\n")
    print("| size | UNet step with CFG (batch 2), TFLOP | VAE decode, TFLOP |")
    print("| --- | ---: | ---: |")
    for size in SIZES:
        latent = size // 8
        with torch.device("meta"):
            step = (torch.zeros(2, 4, latent, latent), 1, torch.zeros(2, 77, models._CONTEXT_DIM))
            decode = torch.zeros(1, 4, latent, latent)
        print(f"| {size}x{size} | {count(unet, *step) / 1e12:.3f} | {count(vae.decode, decode) / 1e12:.3f} |")


if __name__ == "__main__":
    main()
