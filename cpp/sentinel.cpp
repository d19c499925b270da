#include "sentinel.h"

#include "ggml-backend.h"

namespace sdcpp {

namespace {
// More than a 64x32 output tile of float32 past any row, and ggml's alignment padding.
constexpr int64_t kWords    = 4096;
constexpr uint32_t kPattern = 0x5DC0FFEEu;
}  // namespace

void Sentinels::guard(ggml_context* ctx, ggml_tensor* output) {
    ggml_tensor* s = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, kWords);
    ggml_format_name(s, "sentinel of %s", ggml_op_desc(output));
    guards_.emplace_back(output, s);
}

void Sentinels::fill() const {
    const std::vector<uint32_t> pattern(kWords, kPattern);
    for (const auto& g : guards_) {
        ggml_backend_tensor_set(g.second, pattern.data(), 0, ggml_nbytes(g.second));
    }
}

std::string Sentinels::overwritten() const {
    std::vector<uint32_t> got(kWords);
    for (const auto& g : guards_) {
        ggml_backend_tensor_get(g.second, got.data(), 0, ggml_nbytes(g.second));
        for (uint32_t word : got) {
            if (word != kPattern) {
                const int64_t* ne = g.first->ne;
                return std::string(ggml_op_desc(g.first)) + " [" + std::to_string(ne[0]) + ", " + std::to_string(ne[1]) +
                       ", " + std::to_string(ne[2]) + ", " + std::to_string(ne[3]) + "]";
            }
        }
    }
    return "";
}

}  // namespace sdcpp
