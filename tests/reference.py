"""The reference that sdcpp is checked against: HuggingFace diffusers and transformers on PyTorch (CPU).

Nothing is downloaded: the CLIP vocabulary is OpenAI's, as their openai-clip package ships it, and the
weights are the random-weight diffusers folder of tests/models.py, the same values that sdcpp loads.
"""

from __future__ import annotations

import gzip
import importlib.metadata
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

BOS, EOS = 49406, 49407


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map of the 256 bytes to printable characters, on which CLIP's BPE runs."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


@lru_cache(maxsize=None)
def clip_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    """CLIP's tokenizer (the one diffusers pipelines use), built from OpenAI's BPE merges as
    OpenAI's openai-clip package ships them (its data file only: importing that package needs
    torchvision, which has no CPU build on PyPI): the vocabulary is the 256 byte symbols, the same with ``</w>``, one
    entry per merge, and the two special tokens, 49408 in all (the layout of OpenAI's
    ``SimpleTokenizer``).

    SD1.x's tokenizer, and SDXL's first, pad with ``<|endoftext|>``; SDXL's second (``tokenizer_2``,
    OpenCLIP's) pads with ``"!"`` (id 0): :func:`sdxl_tokenizers`."""
    vocab_file = next(
        f for f in importlib.metadata.files("openai-clip") or () if f.name == "bpe_simple_vocab_16e6.txt.gz"
    )
    lines = gzip.decompress(Path(vocab_file.locate()).read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(_bytes_to_unicode().values())
    vocab = [*symbols, *(s + "</w>" for s in symbols), *("".join(m) for m in merges), "<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408
    return CLIPTokenizer(
        vocab={token: i for i, token in enumerate(vocab)}, merges=merges, model_max_length=77, pad_token=pad_token
    )


def sdxl_tokenizers() -> tuple[CLIPTokenizer, CLIPTokenizer]:
    """``tokenizer`` and ``tokenizer_2`` of a StableDiffusionXLPipeline."""
    return clip_tokenizer(), clip_tokenizer(pad_token="!")


def bpe_ids(text: str) -> list[int]:
    """The BPE token ids of ``text``, without BOS/EOS."""
    return clip_tokenizer()(text, add_special_tokens=False)["input_ids"]


def chunked(ids: list[int], chunk: int = 75, pad: int = EOS) -> list[int]:
    """Token ids as SD web UIs (and the engine) give them to CLIP for any length: chunks of 75 ids,
    each as BOS + ids + EOS, the last one padded to 77."""
    out = []
    for start in range(0, max(len(ids), 1), chunk):
        part = [BOS, *ids[start : start + chunk], EOS]
        out += part + [pad] * (chunk + 2 - len(part))
    return out


def check_denoiser_call(ours: np.ndarray, theirs: Callable[[float], np.ndarray], t: float, bound: float,
                        measured: dict[str, str], label: str) -> None:
    """``ours`` (the engine's denoiser output at timestep ``t``) against ``theirs(t)``: the relative error,
    recorded in ``measured``, is below ``bound``, and ``theirs(t - 1)`` is over 3 times farther off (the
    comparison tells one timestep from the next)."""
    reference = theirs(t)
    error = float(np.linalg.norm(ours - reference) / np.linalg.norm(reference))
    measured[f"{label}, t={t:g}"] = f"relative error {error:.1e} (bound {bound:.1e})"
    assert error < bound, f"relative error {error:.2e}"
    assert np.linalg.norm(ours - theirs(t - 1)) / np.linalg.norm(reference) > 3 * error, "one step off must miss"


class Reference:
    """The SD 1.x components of a diffusers folder, float32 on the CPU, in eval mode."""

    def __init__(self, folder: Path):
        torch.set_grad_enabled(False)
        self.text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=torch.float32).eval()
        self.unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval()
        self.vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
        # The engine's "discrete" schedule spaces timesteps evenly from 999 to 0: diffusers' "linspace".
        self.scheduler = EulerDiscreteScheduler.from_pretrained(folder / "scheduler", timestep_spacing="linspace")

    def encode(self, ids: list[int], clip_skip: int = 1) -> np.ndarray:
        """Hidden states (77, 768) of 77 ids. ``clip_skip`` counts as in A1111 and sdcpp (1: the last
        layer, 2: the one before), each followed by the final layer norm, as diffusers does."""
        out = self.text_encoder(torch.tensor([ids]), output_hidden_states=clip_skip > 1)
        if clip_skip == 1:
            return out.last_hidden_state[0].numpy()
        hidden = out.hidden_states[-clip_skip]
        return self.text_encoder.final_layer_norm(hidden)[0].numpy()  # transformers 5 has no .text_model level

    def unet_eps(self, x: np.ndarray, timestep: float, context: np.ndarray) -> np.ndarray:
        return self.unet(torch.from_numpy(x)[None], torch.tensor([timestep]), torch.from_numpy(context)[None]).sample[0].numpy()

    def decode(self, latent: np.ndarray) -> np.ndarray:
        """The [0, 1] image (3, H, W) of a final latent, as StableDiffusionPipeline post-processes it."""
        image = self.vae.decode(torch.from_numpy(latent)[None] / self.vae.config.scaling_factor).sample[0]
        return (image / 2 + 0.5).clamp(0, 1).numpy()

    def sigmas(self, steps: int) -> np.ndarray:
        self.scheduler.set_timesteps(steps)
        return self.scheduler.sigmas.numpy()

    def generate(self, prompt: str, *, seed: int, steps: int, cfg_scale: float, width: int, height: int) -> np.ndarray:
        """StableDiffusionPipeline's float image (H, W, 3) in [0, 1], from torch's CPU generator seeded with ``seed``."""
        pipe = StableDiffusionPipeline(
            vae=self.vae,
            text_encoder=self.text_encoder,
            tokenizer=clip_tokenizer(),
            unet=self.unet,
            scheduler=self.scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(disable=True)
        result = pipe(
            prompt,
            negative_prompt="",
            width=width,
            height=height,
            num_inference_steps=steps,
            guidance_scale=cfg_scale,
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="np",
        )
        return result.images[0]
