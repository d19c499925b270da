// Catches a kernel that writes past the end of its output.
//
// Metal's tensor-API matrix product stores whole tiles; where a tile reaches past the output (the
// reported failure: output column counts of 64 modulo 128), it overwrites whatever the allocator
// placed next, and the engine's graph allocator places live tensors there. In the small graphs of
// `sdcpp.ops` and the device probe every tensor gets its own place, in the order the context
// created them (ggml_backend_alloc_ctx_tensors), so a sentinel created right after an output lies
// right behind it: it is filled with a pattern before the computation and checked after.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ggml.h"

namespace sdcpp {

class Sentinels {
public:
    // Call right after creating `output`, before creating any other tensor.
    void guard(ggml_context* ctx, ggml_tensor* output);
    // Call once the context's tensors are allocated.
    void fill() const;
    // The name of the first output whose sentinel was overwritten ("" when none was).
    std::string overwritten() const;

private:
    std::vector<std::pair<ggml_tensor*, ggml_tensor*>> guards_;  // output, its sentinel
};

}  // namespace sdcpp
