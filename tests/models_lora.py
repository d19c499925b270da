"""Random-weight LoRA and textual-inversion files for the SD 1.5 test model, in the layouts found in
the wild: kohya / AUTOMATIC1111 LoRA names (``lora_unet_..._to_q.lora_down.weight``), diffusers / PEFT
names (``unet.down_blocks...to_q.lora_A.weight``), and an A1111 embedding (``emb_params``).

Small (a few MB at most): a rank-4 update of every UNet attention projection and of the text encoder's
self-attention, large enough to change a 64x64 image visibly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .models import write_safetensors

_RANK = 4
_CLIP_DIM, _CLIP_LAYERS = 768, 12
# (diffusers prefix, channels) of each SD 1.5 UNet transformer block.
_UNET_BLOCKS = (
    [(f"down_blocks.{b}.attentions.{a}", c) for b, c in enumerate((320, 640, 1280)) for a in range(2)]
    + [("mid_block.attentions.0", 1280)]
    + [(f"up_blocks.{b}.attentions.{a}", c) for b, c in zip((1, 2, 3), (1280, 640, 320)) for a in range(3)]
)


def _targets() -> list[tuple[str, str, int, int]]:
    """(component, diffusers module name, out features, in features) of each adapted layer."""
    out = []
    for prefix, c in _UNET_BLOCKS:
        block = f"{prefix}.transformer_blocks.0"
        for name, fan_in in (("attn1.to_q", c), ("attn1.to_k", c), ("attn1.to_v", c), ("attn1.to_out.0", c),
                             ("attn2.to_q", c), ("attn2.to_k", _CLIP_DIM), ("attn2.to_v", _CLIP_DIM)):
            out.append(("unet", f"{block}.{name}", c, fan_in))
    for layer in range(_CLIP_LAYERS):
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out.append(("text_encoder", f"text_model.encoder.layers.{layer}.self_attn.{proj}", _CLIP_DIM, _CLIP_DIM))
    return out


def _pairs(seed: int) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(component, module, down (rank, in), up (out, rank)) with an update of about the weights' size."""
    rng = np.random.default_rng(seed)
    pairs = []
    for component, module, fan_out, fan_in in _targets():
        down = rng.standard_normal((_RANK, fan_in), dtype=np.float32) / np.sqrt(fan_in)
        up = rng.standard_normal((fan_out, _RANK), dtype=np.float32) / np.sqrt(_RANK)
        pairs.append((component, module, down.astype(np.float16), up.astype(np.float16)))
    return pairs


def write_kohya_lora(path, *, seed: int = 1) -> Path:
    """kohya-ss / AUTOMATIC1111 names: ``lora_unet_<module with _>.lora_down.weight``, ``.alpha``."""
    tensors = {}
    for component, module, down, up in _pairs(seed):
        key = ("lora_unet_" if component == "unet" else "lora_te_") + module.replace(".", "_")
        tensors[f"{key}.lora_down.weight"] = down
        tensors[f"{key}.lora_up.weight"] = up
        tensors[f"{key}.alpha"] = np.array(_RANK, dtype=np.float16)
    write_safetensors(path, tensors, {"ss_network_module": "networks.lora", "ss_network_dim": str(_RANK)})
    return Path(path)


def write_peft_lora(path, *, seed: int = 2) -> Path:
    """diffusers / PEFT names (``save_lora_weights``): ``unet.<module>.lora_A.weight`` / ``lora_B``."""
    tensors = {}
    for component, module, down, up in _pairs(seed):
        tensors[f"{component}.{module}.lora_A.weight"] = down
        tensors[f"{component}.{module}.lora_B.weight"] = up
    write_safetensors(path, tensors, {"format": "pt"})
    return Path(path)


def lora_tensor_count(peft: bool = False) -> int:
    """How many tensors a file has (kohya: down, up, alpha; PEFT: A, B), to check the engine applied all."""
    return (2 if peft else 3) * len(_targets())


def write_embedding(path, *, vectors: int = 2, seed: int = 3) -> Path:
    """An AUTOMATIC1111 textual-inversion file: ``emb_params`` of shape (vectors, 768), of the size of
    the test model's token embeddings (standard deviation 0.02)."""
    values = np.random.default_rng(seed).standard_normal((vectors, _CLIP_DIM), dtype=np.float32) * np.float32(0.02)
    write_safetensors(path, {"emb_params": values.astype(np.float16)})
    return Path(path)
