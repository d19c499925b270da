"""The engine's model family detection, in Python, from tensor names and shapes.

A port of ``ModelLoader::get_sd_version`` (the engine's src/model.cpp) and of the part of its name
conversion (src/name_conversion.cpp) that detection reads. The engine detects twice: on the names as
loaded (with the prefixes each file gets), then on the names converted for the version found first;
the second answer is the family. ``tests/test_inspect.py`` checks that this agrees with
``Generator.family`` on every model fixture.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

__all__ = [
    "FAMILIES", "detect", "convert_name", "is_unet", "is_unused", "unet_family", "wan_depth", "wan_frame_inputs",
    "REQUIRED", "RECOMMENDED", "WAN", "WAN_DEPTHS",
]

Shapes = Mapping[str, Sequence[int]]  # name -> ggml ne (innermost first)

# SDVersion's order and model_version_to_str's names (src/model.h, src/stable-diffusion.cpp).
FAMILIES = [
    "SD 1.x", "SD 1.x Inpaint", "Instruct-Pix2Pix", "SD 1.x Tiny UNet", "SD 2.x", "SD 2.x Inpaint",
    "SD 2.x Tiny UNet", "SDXS (512-DS)", "SDXS (09)", "SDXL", "SDXL Inpaint", "SDXL Instruct-Pix2Pix",
    "SDXL (Vega)", "SDXL (SSD1B)", "SVD", "SD3.x", "Flux", "Flux Fill", "Flux Control", "Flex.2",
    "Chroma Radiance", "Wan 2.x", "Wan 2.2 I2V", "Wan 2.2 TI2V", "Qwen Image", "Anima", "Flux.2",
    "Flux.2 klein", "Z-Image", "Ovis Image", "Ernie Image",
]
SD1 = {"SD 1.x", "SD 1.x Inpaint", "Instruct-Pix2Pix", "SD 1.x Tiny UNet", "SDXS (512-DS)"}
SD2 = {"SD 2.x", "SD 2.x Inpaint", "SD 2.x Tiny UNet", "SDXS (09)"}
SDXL = {"SDXL", "SDXL Inpaint", "SDXL Instruct-Pix2Pix", "SDXL (Vega)", "SDXL (SSD1B)"}
UNET = SD1 | SD2 | SDXL
WAN = {"Wan 2.x", "Wan 2.2 I2V", "Wan 2.2 TI2V"}

# The components each family's pipeline reads (stable-diffusion.cpp picks the text encoders by family),
# named as the Generator argument that supplies each.
_CLIP = ("diffusion_model", "vae", "clip_l")
REQUIRED: dict[str, tuple[str, ...]] = {
    **{f: _CLIP for f in SD1 | SD2},
    **{f: (*_CLIP, "clip_g") for f in SDXL},
    "SVD": ("diffusion_model", "vae"),
    "SD3.x": _CLIP,
    **{f: _CLIP for f in ("Flux", "Flux Fill", "Flux Control", "Flex.2")},
    "Chroma Radiance": ("diffusion_model",),
    **{f: ("diffusion_model", "vae") for f in WAN},
    **{
        f: ("diffusion_model", "vae", "llm")
        for f in ("Qwen Image", "Anima", "Flux.2", "Flux.2 klein", "Z-Image", "Ovis Image", "Ernie Image")
    },
}

# Text encoders the engine runs without, feeding zeros in their place and warning that prompt adherence
# suffers (SD3CLIPEmbedder and FluxCLIPEmbedder, src/conditioner.hpp; for SD3 without clip_g, patch 0031).
# Wan's umT5 and Chroma Radiance's T5-XXL are their only text encoders: without it (T5CLIPEmbedder warns
# "No text encoders provided, cannot process prompts!") the prompt has no effect at all.
RECOMMENDED: dict[str, tuple[str, ...]] = {
    "SD3.x": ("clip_g", "t5xxl"),
    **{f: ("t5xxl",) for f in (*WAN, "Chroma Radiance")},
    **{f: ("t5xxl",) for f in ("Flux", "Flux Fill", "Flux Control", "Flex.2")},
}

# Tensors the engine drops while reading safetensors and legacy torch files (unused_tensors, model.cpp).
_UNUSED_PREFIXES = (
    "betas", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    "cond_stage_model.transformer.text_model.embeddings.position_ids",
    "cond_stage_model.1.model.text_model.embeddings.position_ids",
    "cond_stage_model.transformer.vision_model.embeddings.position_ids", "cond_stage_model.model.logit_scale",
    "conditioner.embedders.0.transformer.text_model.embeddings.position_ids",
    "conditioner.embedders.0.model.logit_scale", "conditioner.embedders.1.model.logit_scale",
    "model.diffusion_model.time_embedding.cond_proj.weight", "unet.time_embedding.cond_proj.weight",
    "model_ema.decay", "model_ema.num_updates", "model_ema.diffusion_model", "embedding_manager",
    "denoiser.sigmas", "text_encoders.t5xxl.transformer.encoder.embed_tokens.weight", "ztsnr",
    "edm_vpred.sigma_min", "text_encoders.llm.output.weight", "text_encoders.llm.lm_head.",
    "first_stage_model.bn.",
)


def is_unused(name: str) -> bool:
    return name.startswith(_UNUSED_PREFIXES)


_TOKEN_EMBEDDINGS = {
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
    "cond_stage_model.model.token_embedding.weight",
    "text_model.embeddings.token_embedding.weight",
    "te.text_model.embeddings.token_embedding.weight",
    "conditioner.embedders.0.model.token_embedding.weight",
    "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
}
_INPUT_BLOCKS = {"model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.img_in.weight", "unet.conv_in.weight"}
# Names whose presence settles the family at once, checked in the engine's order.
_DECISIVE = [
    ("model.diffusion_model.nerf_final_layer_conv.", "Chroma Radiance"),
    ("model.diffusion_model.joint_blocks.", "SD3.x"),
    ("model.diffusion_model.transformer_blocks.0.img_mod.1.weight", "Qwen Image"),
    ("llm_adapter.blocks.0.cross_attn.q_proj.weight", "Anima"),
    ("model.diffusion_model.double_blocks.0.img_mlp.gate_proj.weight", "Ovis Image"),
    ("model.diffusion_model.cap_embedder.0.weight", "Z-Image"),
    ("model.diffusion_model.layers.0.adaLN_sa_ln.weight", "Ernie Image"),
]


def detect(shapes: Shapes) -> Optional[str]:
    """``get_sd_version`` over the names in insertion order; None where the engine finds no family."""
    f: dict[str, bool] = {}
    token_ne: Sequence[int] = (0, 0, 0, 0)
    input_ne: Sequence[int] = (0, 0, 0, 0)
    patch_channels = 0
    for name, ne in shapes.items():
        if "model.diffusion_model.double_blocks." in name:
            f["flux"] = True
        # The engine tests these in one loop with flux2/single_block_47 between them; the first hit returns.
        for marker, family in _DECISIVE[:4]:
            if marker in name:
                return family
        if "model.diffusion_model.double_stream_modulation_img.lin.weight" in name:
            f["flux2"] = True
        if "single_blocks.47.linear1.weight" in name:
            f["single_block_47"] = True
        for marker, family in _DECISIVE[4:]:
            if marker in name:
                return family
        if "model.diffusion_model.blocks.0.cross_attn.norm_k.weight" in name:
            f["wan"] = True
        if "model.diffusion_model.patch_embedding.weight" in name:
            patch_channels = _ne(ne, 3)
        if "model.diffusion_model.img_emb" in name:
            f["img_emb"] = True
        if "model.diffusion_model.input_blocks." in name or "unet.down_blocks." in name:
            f["unet"] = True
            if f.get("multiple_encoders"):
                f["xl"] = True
        if "conditioner.embedders.1" in name or "cond_stage_model.1" in name or "te.1" in name:
            f["multiple_encoders"] = True
            if f.get("unet"):
                f["xl"] = True
        if "model.diffusion_model.input_blocks.8.0.time_mixer.mix_factor" in name:
            return "SVD"
        if "model.diffusion_model.middle_block.1." in name or "unet.mid_block.resnets.1." in name:
            f["middle_block_1"] = True
        if (
            "model.diffusion_model.output_blocks.3.1.transformer_blocks.1" in name
            or "unet.up_blocks.1.attentions.0.transformer_blocks.1" in name
        ):
            f["output_block_311"] = True
        if "model.diffusion_model.output_blocks.7.1" in name or "unet.up_blocks.2.attentions.1" in name:
            f["output_block_71"] = True
            if "model.diffusion_model.output_blocks.7.1.transformer_blocks.0.attn1.to_k.weight" in name:
                f["attn_1024"] = _ne(ne, 0) == 1024
        if name in _TOKEN_EMBEDDINGS:
            token_ne = ne
        if name in _INPUT_BLOCKS:
            input_ne = ne
    return _decide(f, _ne(token_ne, 0), _ne(input_ne, 0), _ne(input_ne, 2), patch_channels)


def _ne(ne: Sequence[int], i: int) -> int:
    return ne[i] if i < len(ne) else 1


def _decide(f: dict[str, bool], token_width: int, input_ne0: int, input_channels: int, patch_channels: int) -> Optional[str]:
    if f.get("wan"):
        if patch_channels == 184320 and not f.get("img_emb"):
            return "Wan 2.2 I2V"
        if patch_channels == 147456 and not f.get("img_emb"):
            return "Wan 2.2 TI2V"
        return "Wan 2.x"
    inpaint, ip2p = input_channels == 9, input_channels == 8
    if f.get("xl"):
        if inpaint:
            return "SDXL Inpaint"
        if ip2p:
            return "SDXL Instruct-Pix2Pix"
        if not f.get("middle_block_1"):
            return "SDXL (SSD1B)" if f.get("output_block_311") else "SDXL (Vega)"
        return "SDXL"
    if f.get("flux") and not f.get("flux2"):
        return {384: "Flux Fill", 128: "Flux Control", 196: "Flex.2"}.get(input_ne0, "Flux")
    if f.get("flux2"):
        return "Flux.2" if f.get("single_block_47") else "Flux.2 klein"
    if token_width == 768:
        if inpaint:
            return "SD 1.x Inpaint"
        if ip2p:
            return "Instruct-Pix2Pix"
        if not f.get("middle_block_1"):
            return "SD 1.x Tiny UNet" if f.get("output_block_71") else "SDXS (512-DS)"
        return "SD 1.x"
    if token_width == 1024:
        if inpaint:
            return "SD 2.x Inpaint"
        if not f.get("middle_block_1"):
            return "SDXS (09)" if f.get("attn_1024") else "SD 2.x Tiny UNet"
        return "SD 2.x"
    return None


# --- name conversion (convert_tensor_name), the part detection and component lookup read -------------

# With third_party/patches/0018-sdxl-diffusers-detection.patch: the longest matching prefix wins.
_PREFIXES = {
    "diffusion_model.": "model.diffusion_model.",
    "unet.": "model.diffusion_model.",
    "transformer.": "model.diffusion_model.",
    "vae.": "first_stage_model.",
    "text_encoder.": "cond_stage_model.transformer.",
    "te.": "cond_stage_model.transformer.",
    "te.1.": "cond_stage_model.1.transformer.",
    "text_encoder.2.": "cond_stage_model.1.transformer.",
    "conditioner.embedders.0.open_clip.": "cond_stage_model.",
    "conditioner.embedders.0.": "cond_stage_model.",
    "conditioner.embedders.1.": "cond_stage_model.1.",
    "te2.": "cond_stage_model.1.transformer.",
    "te1.": "cond_stage_model.transformer.",
    "te3.": "text_encoders.t5xxl.transformer.",
}
_FLUX_LIKE = {"Flux", "Flux Fill", "Flux Control", "Flex.2", "Ovis Image", "Chroma Radiance"}


def convert_name(name: str, family: Optional[str]) -> str:
    prefixes = dict(_PREFIXES)
    if family in _FLUX_LIKE:
        prefixes["te1."] = "text_encoders.clip_l.transformer."
    best = max((p for p in prefixes if name.startswith(p)), key=len, default=None)
    if best is not None:
        name = prefixes[best] + name[len(best) :]
    unet = "model.diffusion_model."
    if name.startswith(unet) and family in UNET:
        name = unet + _diffusers_unet_to_original(name[len(unet) :], xl=family in SDXL)
    return name


def _unet_layer_map(xl: bool) -> list[tuple[str, str]]:
    """(original, diffusers) prefixes of convert_diffusers_unet_to_original_sd1/_sdxl."""
    pairs = []
    for i in range(3 if xl else 4):
        for j in range(2):
            pairs.append((f"input_blocks.{3 * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if (i > 0) if xl else (i < 3):
                pairs.append((f"input_blocks.{3 * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        for j in range(4 if xl else 3):
            pairs.append((f"output_blocks.{3 * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if i < 2 or not xl:
                pairs.append((f"output_blocks.{3 * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < 3:
            pairs.append((f"input_blocks.{3 * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
            pairs.append((f"output_blocks.{3 * i + 2}.{1 if i == 0 else 2}.", f"up_blocks.{i}.upsamplers.0."))
    if xl:
        pairs.append(("output_blocks.2.2.conv.", "output_blocks.2.1.conv."))
    pairs.append(("middle_block.1.", "mid_block.attentions.0."))
    pairs += [(f"middle_block.{2 * j}.", f"mid_block.resnets.{j}.") for j in range(2)]
    return pairs


_UNET_WHOLE = {"conv_in.weight": "input_blocks.0.0.weight", "conv_in.bias": "input_blocks.0.0.bias"}
_UNET_LAYERS = {xl: _unet_layer_map(xl) for xl in (False, True)}


def _diffusers_unet_to_original(name: str, xl: bool) -> str:
    if name in _UNET_WHOLE:
        return _UNET_WHOLE[name]
    for original, diffusers in _UNET_LAYERS[xl]:
        name = name.replace(diffusers, original, 1)
    return name


# --- a diffusion model alone -------------------------------------------------------------------------

# The width of a UNet's cross-attention keys is its text encoder's (context_dim in src/unet.hpp).
_CONTEXT_WIDTHS = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}


# The transformer depths wan.hpp's WanRunner knows (30: Wan 2.1 1.3B and Wan 2.2 TI2V 5B; 40: the 14B
# models); it aborts the process on any other.
WAN_DEPTHS = (30, 40)


def wan_depth(shapes: Shapes) -> int:
    """The number of transformer blocks of a Wan diffusion model, counted as WanRunner counts them."""
    prefix = "model.diffusion_model.blocks."
    return max((int(n[len(prefix):].split(".")[0]) + 1 for n in shapes if n.startswith(prefix)), default=0)


def wan_frame_inputs(family: Optional[str], shapes: Shapes) -> tuple[str, ...]:
    """Which of ``init_image`` and ``end_image`` the engine uses for a Wan model (the rest it ignores):
    prepare_video_generation_latents in src/stable-diffusion.cpp, by the transformer wan.hpp finds."""
    prefix = "model.diffusion_model."
    if family == "Wan 2.2 I2V" or any(n.startswith(prefix + "img_emb") for n in shapes):  # I2V, FLF2V
        return ("init_image", "end_image")
    if family == "Wan 2.2 TI2V" or any(n.startswith(prefix + "vace_blocks.") for n in shapes):  # VACE: a reference
        return ("init_image",)
    return ()  # text to video


def unet_family(shapes: Shapes) -> Optional[str]:
    """The family of a UNet given without its text encoders (which the engine detects by), or None."""
    for name, ne in shapes.items():
        if name.startswith("model.diffusion_model.input_blocks.") and name.endswith("attn2.to_k.weight"):
            return _CONTEXT_WIDTHS.get(_ne(ne, 0))
    return None


def is_unet(shapes: Shapes) -> bool:
    """Whether the engine gives separate text encoders the UNet models' names (with patch 0036: also for a
    UNet whose version is unknown yet because no text encoder came before it)."""
    return detect(shapes) in UNET or any(n.startswith("model.diffusion_model.input_blocks.") for n in shapes)


# --- components ---------------------------------------------------------------------------------------

_COMPONENT_PREFIXES = [
    ("model.diffusion_model.", "diffusion_model"),
    ("first_stage_model.", "vae"),
    ("tae.", "vae"),
    ("cond_stage_model.1.", "clip_g"),
    ("text_encoders.clip_g.", "clip_g"),
    ("cond_stage_model.", "clip_l"),
    ("text_encoders.clip_l.", "clip_l"),
    ("text_encoders.t5xxl.", "t5xxl"),
    ("text_encoders.llm.", "llm"),
]


def component_of(converted_name: str) -> Optional[str]:
    for prefix, component in _COMPONENT_PREFIXES:
        if converted_name.startswith(prefix):
            return component
    return None
