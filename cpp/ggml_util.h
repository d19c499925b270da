// Small helpers for the binding's own ggml graphs (sdcpp.ops, the device probe): owners that free
// ggml objects, and uploading float32 values into a float32 or float16 tensor.
#pragma once

#include <memory>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"

namespace sdcpp {

struct BackendFree {
    void operator()(ggml_backend_t b) const { ggml_backend_free(b); }
};
struct BufferFree {
    void operator()(ggml_backend_buffer_t b) const { ggml_backend_buffer_free(b); }
};
struct ContextFree {
    void operator()(ggml_context* c) const { ggml_free(c); }
};
struct AllocatorFree {
    void operator()(ggml_gallocr_t a) const { ggml_gallocr_free(a); }
};
using BackendPtr   = std::unique_ptr<ggml_backend, BackendFree>;
using BufferPtr    = std::unique_ptr<ggml_backend_buffer, BufferFree>;
using ContextPtr   = std::unique_ptr<ggml_context, ContextFree>;
using AllocatorPtr = std::unique_ptr<ggml_gallocr, AllocatorFree>;

inline void set_floats(ggml_tensor* t, const float* values) {
    if (t->type == GGML_TYPE_F16) {
        std::vector<ggml_fp16_t> half(ggml_nelements(t));
        ggml_fp32_to_fp16_row(values, half.data(), ggml_nelements(t));
        ggml_backend_tensor_set(t, half.data(), 0, ggml_nbytes(t));
    } else {
        ggml_backend_tensor_set(t, values, 0, ggml_nbytes(t));
    }
}

}  // namespace sdcpp
