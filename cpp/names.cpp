// The engine's own name tables (samplers, schedulers, previews, LoRA apply modes, RNGs, weight types), read through its
// *_name / str_to_* helpers so that nothing here re-types them.
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "ggml-cpu.h"
#include "ggml.h"
#include "module.h"
#include "stable-diffusion.h"

namespace sdcpp {

namespace {

// Every name whose str_to_* lookup leads back to its own index: this skips removed enum slots.
template <typename Enum>
std::vector<std::string> names(int count, const char* (*to_name)(Enum), Enum (*from_name)(const char*)) {
    std::vector<std::string> out;
    for (int i = 0; i < count; ++i) {
        const char* name = to_name(static_cast<Enum>(i));
        if (name && static_cast<int>(from_name(name)) == i) {
            out.emplace_back(name);
        }
    }
    return out;
}

}  // namespace

void register_names(py::module_& m, py::module_& testing) {
    // sdcpp.names writes these out for IDEs; the tests check them against the engine's tables.
    testing.def("sample_methods", [] {
        return names<sample_method_t>(SAMPLE_METHOD_COUNT, sd_sample_method_name, str_to_sample_method);
    }, "Sampler names, in the engine's order.");
    testing.def("schedulers", [] {
        return names<scheduler_t>(SCHEDULER_COUNT, sd_scheduler_name, str_to_scheduler);
    }, "Scheduler names, in the engine's order.");
    testing.def("lora_apply_modes", [] {
        return names<lora_apply_mode_t>(LORA_APPLY_MODE_COUNT, sd_lora_apply_mode_name, str_to_lora_apply_mode);
    }, "LoRA apply modes: when a LoRA is merged into the weights.");
    m.def("prediction_names", [] {
        return names<prediction_t>(PREDICTION_COUNT, sd_prediction_name, str_to_prediction);
    }, "Prediction types of the diffusion model's denoiser.");
    m.def("preview_modes", [] {
        return names<preview_t>(PREVIEW_COUNT, sd_preview_name, str_to_preview);
    }, "Preview modes: how a preview image is made from the latent during sampling.");
    m.def("rng_types", [] {
        return names<rng_type_t>(RNG_TYPE_COUNT, sd_rng_type_name, str_to_rng_type);
    }, "Random number generator names.");
    m.def("weight_types", [] {
        std::vector<std::string> out;
        for (const std::string& name : names<sd_type_t>(SD_TYPE_COUNT, sd_type_name, str_to_sd_type)) {
            auto type = static_cast<ggml_type>(str_to_sd_type(name.c_str()));
            // Weights are floats or quantized blocks; removed slots have no block size. q8_1 and q8_K
            // are only the CPU's formats for activations: nothing multiplies them as weights (no
            // vec_dot), and ggml_quantize_chunk aborts the process when asked for them.
            bool weight = type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 ||
                          (ggml_is_quantized(type) && ggml_get_type_traits_cpu(type)->vec_dot != nullptr);
            if (weight && ggml_blck_size(type) > 0) {
                out.push_back(name);
            }
        }
        return out;
    }, "Weight types (ggml type names) the engine can convert weights to at load time.");
}

}  // namespace sdcpp
