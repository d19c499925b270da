// The settings of one generation as the engine call takes them, bound as _core.GenerationParams.
// sdcpp.params.GenerationParams (the one definition of the parameters, with types, defaults and
// bounds) fills it by field name; tests/test_params.py checks that both have the same fields.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stable-diffusion.h"

namespace sdcpp {

// LoRA file path -> weight.
using LoraWeights = std::map<std::string, float>;

// Groups of settings, bound as _core.VaeTiling, _core.SkipLayerGuidance and _core.HiresFix and filled
// by field name from sdcpp.VaeTiling, sdcpp.SkipLayerGuidance and sdcpp.HiresFix (the engine's
// sd_tiling_params_t and sd_slg_params_t, named as the engine names them; the hires fix's 0 and ""
// mean "not given" where Python's None does).
#define SDCPP_VAE_TILING(X)       \
    X(int, tile_size_x)           \
    X(int, tile_size_y)           \
    X(float, target_overlap)      \
    X(float, rel_size_x)          \
    X(float, rel_size_y)

#define SDCPP_SKIP_LAYER_GUIDANCE(X) \
    X(std::vector<int>, layers)      \
    X(float, layer_start)            \
    X(float, layer_end)              \
    X(float, scale)

#define SDCPP_HIRES_FIX(X)         \
    X(float, scale)                \
    X(int, width)                  \
    X(int, height)                 \
    X(int, steps)                  \
    X(float, denoising_strength)   \
    X(std::string, upscaler)       \
    X(std::string, model)          \
    X(int, tile_size)

// A video's own settings (the rest are GenerationParams'), bound as _core.VideoParams and filled by
// field name from sdcpp.VideoParams: the engine's sd_vid_gen_params_t. The high-noise settings are
// for Wan 2.2's second expert; -1, "" and infinity mean "the engine decides" where Python's None does.
#define SDCPP_VIDEO_PARAMS(X)            \
    X(int, frames)                       \
    X(int, high_noise_steps)             \
    X(float, high_noise_cfg_scale)       \
    X(std::string, high_noise_sampler)   \
    X(float, moe_boundary)

// How a model is loaded, bound as _core.LoadOptions and filled by name by sdcpp.Generator, which sets
// every field: the sd_ctx_params_t settings it chooses ("" = the engine's default; threads <= 0: one
// per physical core).
using ComponentPaths = std::map<std::string, std::string>;            // component_names() name -> file
using Embeddings     = std::vector<std::pair<std::string, std::string>>;  // (token, file)
#define SDCPP_LOAD_OPTIONS(X)           \
    X(ComponentPaths, paths)            \
    X(std::string, weight_type)         \
    X(std::string, device)              \
    X(std::string, rng)                 \
    X(std::string, lora_apply_mode)     \
    X(std::string, prediction)          \
    X(Embeddings, embeddings)           \
    X(int, threads)                     \
    X(bool, flash_attn)                 \
    X(bool, keep_clip_on_cpu)           \
    X(bool, keep_vae_on_cpu)            \
    X(bool, vae_decode_only)            \
    X(bool, mmap)                       \
    X(bool, batched_cfg)                \
    X(bool, circular_x)                 \
    X(bool, circular_y)

#define SDCPP_DECLARE_FIELD(type, name) type name{};
struct LoadOptions {
    SDCPP_LOAD_OPTIONS(SDCPP_DECLARE_FIELD)
};
struct VideoParams {
    SDCPP_VIDEO_PARAMS(SDCPP_DECLARE_FIELD)
};
struct VaeTiling {
    SDCPP_VAE_TILING(SDCPP_DECLARE_FIELD)
};
struct SkipLayerGuidance {
    SDCPP_SKIP_LAYER_GUIDANCE(SDCPP_DECLARE_FIELD)
};
struct HiresFix {
    SDCPP_HIRES_FIX(SDCPP_DECLARE_FIELD)
};

// One line per field: the struct and its binding are both made from this list. "" and -1 mean
// "the model's default" where Python's None does.
#define SDCPP_GENERATION_PARAMS(X)      \
    X(std::string, prompt)              \
    X(std::string, negative_prompt)     \
    X(int, width)                       \
    X(int, height)                      \
    X(int, steps)                       \
    X(float, cfg_scale)                 \
    X(float, guidance)                  \
    X(float, flow_shift)                \
    X(std::string, sampler)             \
    X(std::string, scheduler)           \
    X(int64_t, seed)                    \
    X(int, batch)                       \
    X(int, clip_skip)                   \
    X(float, strength)                  \
    X(float, control_strength)          \
    X(bool, auto_resize_ref_image)      \
    X(bool, increase_ref_index)         \
    X(LoraWeights, loras)               \
    X(std::string, id_embedding)        \
    X(float, style_strength)            \
    X(std::optional<HiresFix>, hires)   \
    SDCPP_SAMPLING_EXTRAS(X)

// Sampling extras: infinity means "the engine's default" where Python's None does (as in the
// engine's own structs), an empty list or group "not used".
#define SDCPP_SAMPLING_EXTRAS(X)                    \
    X(int, preview_every)                           \
    X(std::string, preview_mode)                    \
    X(std::optional<VaeTiling>, vae_tiling)         \
    X(std::string, cache_mode)                      \
    X(float, cache_threshold)                       \
    X(std::vector<float>, custom_sigmas)            \
    X(float, eta)                                   \
    X(float, img_cfg_scale)                         \
    X(std::optional<SkipLayerGuidance>, slg)

struct GenerationParams {
    SDCPP_GENERATION_PARAMS(SDCPP_DECLARE_FIELD)
};
#undef SDCPP_DECLARE_FIELD

// The engine's cache mode for a name of cache_mode_names() (the engine's command line names them;
// its library has no name table); throws ValueError for others.
sd_cache_mode_t cache_mode_from_name(const std::string& name);

}  // namespace sdcpp
