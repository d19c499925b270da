// The settings of one generation as the engine call takes them, bound as _core.GenerationParams.
// sdcpp.params.GenerationParams (the one definition of the parameters, with types, defaults and
// bounds) fills it by field name; tests/test_params.py checks that both have the same fields.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace sdcpp {

// LoRA file path -> weight.
using LoraWeights = std::map<std::string, float>;

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
    X(LoraWeights, loras)

struct GenerationParams {
#define SDCPP_DECLARE_FIELD(type, name) type name{};
    SDCPP_GENERATION_PARAMS(SDCPP_DECLARE_FIELD)
#undef SDCPP_DECLARE_FIELD
};

}  // namespace sdcpp
