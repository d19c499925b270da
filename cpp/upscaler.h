// Upscaling: the hires fix's settings as the engine takes them (the Upscaler class is upscaler.cpp's).
#pragma once

#include <optional>

#include "params.h"
#include "stable-diffusion.h"

namespace sdcpp {

// Fills the engine's hires settings from ours; disabled (the engine's defaults) for nullopt.
// `hires` must outlive the engine call: the model path is not copied.
void fill_hires_params(const std::optional<HiresFix>& hires, sd_hires_params_t* out);

}  // namespace sdcpp
