"""sdcpp.profile_ops (engine patch 0011): every graph node timed alone, with the same result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp.profiling import node_flops
from sdcpp.system import packed_cpu_product

SETTINGS = dict(width=64, height=64, steps=2, cfg_scale=7.0, seed=7)


def test_profiling_times_each_node_and_computes_the_same_image(generator: sdcpp.Generator) -> None:
    gen = generator
    plain = np.asarray(gen.generate("a lighthouse", **SETTINGS)[0])
    with sdcpp.profile_ops() as profile:
        profiled = np.asarray(gen.generate("a lighthouse", **SETTINGS)[0])
    # Node by node is the same arithmetic as one run, only synchronised in between; except that CUDA
    # runs some nodes of a whole graph as one (a linear layer as one cuBLASLt product, engine patch
    # 0063), which rounds the same sums in another order: 2 levels on an H200.
    bound = 4 if gen.device.startswith("CUDA") else 1
    assert np.abs(plain.astype(int) - profiled.astype(int)).max() <= bound

    runners = {r["runner"] for r in profile.records}
    assert {"clip", "unet", "vae"} <= runners
    unet = [r for r in profile.records if r["runner"] == "unet"]
    assert all(r["us"] >= 0 and r["bytes"] > 0 for r in unet)
    unet_ops = {s.op: s for s in profile.by_op() if s.runner == "unet"}
    assert unet_ops["MUL_MAT"].flops > 0 and unet_ops["MUL_MAT"].seconds > 0

    with sdcpp.profile_ops() as idle:
        pass
    assert idle.records == []  # each profile starts empty and stopping ends the recording


def test_cuda_flash_attention_takes_sd1_heads_padded_to_64(generator: sdcpp.Generator) -> None:
    """Engine patch 0041: CUDA's tensor-core flash-attention kernels take heads of 64 values or more."""
    if not generator.device.startswith("CUDA"):
        pytest.skip("needs a CUDA device (SDCPP_TEST_DEVICE=CUDA0)")
    with sdcpp.profile_ops() as profile:
        generator.generate("a lighthouse", **SETTINGS)
    heads = {r["srcs"][0]["shape"][0] for r in profile.records if r["runner"] == "unet" and r["op"] == "FLASH_ATTN_EXT"}
    # SD 1.x's heads are 40, 80 and 160 wide; 160 is no size CUDA's kernels take (plain attention runs it).
    assert heads == {64, 80}


def test_batched_guidance_multiplies_each_linear_layer_once(generator: sdcpp.Generator) -> None:
    """Engine patch 0057: both samples of batched guidance are rows of one product with the weights.

    Before it, a [C, L, 2] input made two products per linear layer: a pointer-array batched cuBLAS
    GEMM on CUDA, two packings of the weights on the CPU.
    """
    with sdcpp.profile_ops() as profile:
        generator.generate("a lighthouse", **SETTINGS)
    products = [r for r in profile.records if r["runner"] == "unet" and r["op"] == "MUL_MAT"]
    weights_per_sample = [r for r in products if r["srcs"][0]["shape"][2] == 1 and r["srcs"][1]["shape"][2] > 1]
    assert weights_per_sample == []
    # 64x64 pixels: an 8x8 latent, 64 tokens per sample, 77 per prompt; both samples in one product
    rows = {r["srcs"][1]["shape"][1] for r in products}
    assert {2 * 64, 2 * 77} <= rows


def test_feed_forward_gates_with_one_geglu_node(generator: sdcpp.Generator) -> None:
    """Engine patch 0062: a transformer block's GEGLU, x[:d] * gelu(x[d:]), is one GEGLU node. Before it,
    the gate half was copied (CONT), then GELU and MUL passed over it again."""
    with sdcpp.profile_ops() as profile:
        generator.generate("a lighthouse", **SETTINGS)
    unet = [r for r in profile.records if r["runner"] == "unet"]
    glus = [r for r in unet if r["op"] == "GEGLU"]
    assert not any(r["op"] == "GELU" for r in unet)
    # one per block (each block has three LayerNorms), halving the projection's width
    assert len(glus) == sum(r["op"] == "NORM" for r in unet) // 3 > 0
    assert all(2 * r["out"]["shape"][0] == r["srcs"][0]["shape"][0] for r in glus)


@pytest.fixture(scope="module")
def plain_attention_unet(sd15_file: Path) -> list[dict]:
    """The UNet's profiled nodes of one generation with plain attention on the CPU."""
    with sdcpp.Generator(sd15_file, device="cpu", flash_attn=False) as gen, sdcpp.profile_ops() as profile:
        gen.generate("a lighthouse", **SETTINGS)
    return [r for r in profile.records if r["runner"] == "unet"]


def test_attention_scales_its_scores_inside_the_softmax(plain_attention_unet: list[dict]) -> None:
    """Engine patch 0070: plain attention (the CPU's default) scaled Q.K^T's scores by 1/sqrt(d) in a
    SCALE node, a pass over the largest tensor of the step on one CPU thread, before SOFT_MAX. The
    softmax now takes the scale, and reads the scores straight from the product."""
    unet = plain_attention_unet
    softmaxes = [i for i, r in enumerate(unet) if r["op"] == "SOFT_MAX"]
    scores = {tuple(unet[i]["out"]["shape"]) for i in softmaxes}
    assert softmaxes and not any(r["op"] == "SCALE" and tuple(r["out"]["shape"]) in scores for r in unet)
    assert all(unet[i - 1]["op"] == "MUL_MAT" and unet[i - 1]["out"]["shape"] == unet[i]["out"]["shape"]
               for i in softmaxes)


def test_attention_heads_stay_unpadded_in_the_packed_cpu_product(plain_attention_unet: list[dict]) -> None:
    """Engine patch 0074: SD 1.x's 40-wide heads were zero-padded to 48 for Q.K^T on the CPU, which
    tinyBLAS needs; the packed product (patch 0056) takes any width where keys and queries are 64 or
    more, so there the padding was a copy of Q and K and a fifth more multiplications."""
    unet = plain_attention_unet
    # Q.K^T at the 64-token level (a 64x64 image's 8x8 latent), self- and cross-attention
    widths = {r["srcs"][0]["shape"][0] for r in unet if r["op"] == "MUL_MAT" and r["srcs"][0]["type"] == "f32"
              and r["srcs"][1]["shape"][1] == 64 and r["srcs"][0]["shape"][1] in (64, 77)}
    if packed_cpu_product():
        assert widths == {40} and not any(r["op"] == "PAD" for r in unet)
    else:
        assert widths == {48}


def test_flash_attention_reads_its_heads_in_place_and_keys_unpadded(sd15_file: Path) -> None:
    """Engine patch 0058: flash attention reads Q, K and V as strided views, and its output is laid out
    as the caller needs it. Plain attention makes Q, K, V and its output contiguous, four copies per
    attention; flash attention made the same four before the patch, and makes none now.
    Engine patch 0060: the prompt's 77 keys are no longer padded to 256 under a mask."""
    conts, attentions, keys = {}, {}, set()
    # 128x128: 4 tokens at the middle block (at 64x64 one, where the views need no copy either way)
    settings = {**SETTINGS, "width": 128, "height": 128}
    for flash_attn in (False, True):
        with sdcpp.Generator(sd15_file, device="cpu", flash_attn=flash_attn) as gen, sdcpp.profile_ops() as profile:
            gen.generate("a lighthouse", **settings)
        unet = [r for r in profile.records if r["runner"] == "unet"]
        conts[flash_attn] = sum(r["op"] == "CONT" for r in unet)
        attentions[flash_attn] = sum(r["op"] == "FLASH_ATTN_EXT" for r in unet)
        keys |= {r["srcs"][1]["shape"][1] for r in unet if r["op"] == "FLASH_ATTN_EXT"}
    assert attentions[False] == 0 and attentions[True] > 0
    assert conts[False] - conts[True] == 4 * attentions[True]
    assert keys == {16 * 16, 8 * 8, 4 * 4, 2 * 2, 77}


def test_flops_of_a_matrix_product_and_of_attention() -> None:
    mul_mat = {"op": "MUL_MAT", "out": {"shape": (64, 10, 1, 1)}, "srcs": [{"shape": (320, 64, 1, 1)}, {"shape": (320, 10, 1, 1)}]}
    assert node_flops(mul_mat) == 2 * 320 * 64 * 10
    # q: 40 dims x 256 queries x 8 heads; k, v: 77 keys
    attn = {"op": "FLASH_ATTN_EXT", "out": {"shape": (40, 8, 256, 1)},
            "srcs": [{"shape": (40, 256, 8, 1)}, {"shape": (40, 77, 8, 1)}, {"shape": (40, 77, 8, 1)}]}
    assert node_flops(attn) == 2 * (40 + 40) * 256 * 77 * 8
    assert node_flops({"op": "ADD", "out": {"shape": (4, 4, 1, 1)}, "srcs": []}) == 0
