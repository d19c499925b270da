// The stages of a generation one at a time (tokenizer, text encoder, diffusion model, VAE decode,
// initial noise, noise schedule), on a loaded model, through patches/0010-pipeline-stages.patch.
#pragma once

#include <pybind11/numpy.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "module.h"
#include "stable-diffusion.h"

namespace sdcpp {

// Runs `stage` on a model's engine context with the GIL released and serialized with its other
// engine calls; raises GenerationError naming `what` with the engine's log when it returns false.
// Context::stage_runner() gives one.
using StageRunner = std::function<void(const char* what, const std::function<bool(sd_ctx_t*)>& stage)>;

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IdArray    = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

// (ids, weights) the text encoder gets for `prompt`: chunks of 77 with BOS, EOS and padding.
std::pair<py::array_t<int32_t>, py::array_t<float>> tokenize(const StageRunner& run, const std::string& prompt);

// Conditioning (n_tokens, hidden) for ids and weights as tokenize() gives them.
py::array_t<float> encode_tokens(const StageRunner& run, const IdArray& ids, const FloatArray& weights, int clip_skip);

// SDXL's vector conditioning y (adm_in_channels,) for the same ids and weights and a width x height image: the
// pooled, projected text embedding, then the size embeddings.
py::array_t<float> encode_vector(const StageRunner& run, const IdArray& ids, const FloatArray& weights, int clip_skip,
                                 int width, int height);

// Raw diffusion-model output (channels, height, width) for latent x (channels, height, width),
// timestep t and context (n_context, context_dim).
py::array_t<float> diffusion_model(const StageRunner& run, const FloatArray& x, float timestep, const FloatArray& context);

// The [0, 1] image (3, height, width) that a final latent (channels, height, width) decodes to.
py::array_t<float> decode_latent(const StageRunner& run, const FloatArray& latent);

// Initial latent noise (1, channels, height / f, width / f) of a width x height generation with `seed`.
py::array_t<float> initial_noise(const StageRunner& run, int64_t seed, int width, int height);

// steps + 1 noise levels of `scheduler` (SCHEDULER_COUNT: the sampler's default) at width x height.
py::array_t<float> sigmas(const StageRunner& run, sample_method_t sample_method, scheduler_t scheduler, int steps,
                          int width, int height);

}  // namespace sdcpp
