// Whether a ggml device can run the engine: it initialises, it supports the operations an SD UNet
// is made of, and it computes a small graph of them as the CPU does.
//
// ggml lists a Metal device whatever the GPU supports (and a nameless one where Metal is missing,
// as in a VM); the kernels that need SIMD-group reductions are only refused when a graph reaches
// them, and the engine then aborts. Running a small graph of the same operations first turns that
// into a reason that `device="auto"` can act on.
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"
#include "module.h"

namespace sdcpp {

namespace {

struct BackendFree {
    void operator()(ggml_backend_t b) const { ggml_backend_free(b); }
};
struct BufferFree {
    void operator()(ggml_backend_buffer_t b) const { ggml_backend_buffer_free(b); }
};
struct ContextFree {
    void operator()(ggml_context* c) const { ggml_free(c); }
};
using BackendPtr = std::unique_ptr<ggml_backend, BackendFree>;
using BufferPtr  = std::unique_ptr<ggml_backend_buffer, BufferFree>;
using ContextPtr = std::unique_ptr<ggml_context, ContextFree>;

// Deterministic inputs in [-1, 1).
void fill(ggml_tensor* t, unsigned seed) {
    const int64_t n = ggml_nelements(t);
    std::vector<float> values(n);
    unsigned state = seed;
    for (auto& v : values) {
        state = state * 1664525u + 1013904223u;
        v     = static_cast<float>(state >> 8) / static_cast<float>(1u << 23) - 1.0f;
    }
    if (t->type == GGML_TYPE_F16) {
        std::vector<ggml_fp16_t> half(n);
        ggml_fp32_to_fp16_row(values.data(), half.data(), n);
        ggml_backend_tensor_set(t, half.data(), 0, ggml_nbytes(t));
    } else {
        ggml_backend_tensor_set(t, values.data(), 0, ggml_nbytes(t));
    }
}

// A convolution block and an attention block in miniature: conv2d (im2col + f16 matmul),
// group norm, SiLU, permute, layer norm, f16 linear, q·k, softmax, GELU.
// Returns the reason it could not run, or the output in `out`.
std::optional<std::string> run_graph(ggml_backend_t backend, std::vector<float>& out) {
    ggml_init_params params{};
    params.mem_size   = ggml_tensor_overhead() * 64 + ggml_graph_overhead();
    params.no_alloc   = true;
    ContextPtr ctx(ggml_init(params));
    if (!ctx) {
        return "could not create a ggml context";
    }
    ggml_context* c = ctx.get();
    const int width = 8, height = 8, channels = 4, features = 8;
    ggml_tensor* image  = ggml_new_tensor_4d(c, GGML_TYPE_F32, width, height, channels, 1);
    ggml_tensor* kernel = ggml_new_tensor_4d(c, GGML_TYPE_F16, 3, 3, channels, features);
    ggml_tensor* linear = ggml_new_tensor_2d(c, GGML_TYPE_F16, features, features);

    ggml_tensor* h = ggml_conv_2d(c, kernel, image, 1, 1, 1, 1, 1, 1);  // [8, 8, features, 1]
    h = ggml_silu(c, ggml_group_norm(c, h, 4, 1e-6f));
    ggml_tensor* tokens = ggml_reshape_2d(c, ggml_cont(c, ggml_permute(c, h, 1, 2, 0, 3)),
                                          features, width * height);   // [features, 64]
    tokens = ggml_norm(c, tokens, 1e-5f);
    ggml_tensor* q = ggml_mul_mat(c, linear, tokens);                  // [features, 64]
    ggml_tensor* result = ggml_gelu(c, ggml_soft_max(c, ggml_mul_mat(c, q, tokens)));  // [64, 64]

    ggml_cgraph* graph = ggml_new_graph(c);
    ggml_build_forward_expand(graph, result);
    for (int i = 0; i < ggml_graph_n_nodes(graph); ++i) {
        ggml_tensor* node = ggml_graph_node(graph, i);
        if (!ggml_backend_supports_op(backend, node)) {
            return std::string("it does not support ") + ggml_op_desc(node);
        }
    }
    BufferPtr buffer(ggml_backend_alloc_ctx_tensors(c, backend));
    if (!buffer) {
        return "could not allocate memory on it";
    }
    fill(image, 1);
    fill(kernel, 2);
    fill(linear, 3);
    const ggml_status status = ggml_backend_graph_compute(backend, graph);
    if (status != GGML_STATUS_SUCCESS) {
        return std::string("a computation on it failed (") + ggml_status_to_string(status) + ")";
    }
    out.resize(ggml_nelements(result));
    ggml_backend_tensor_get(result, out.data(), 0, ggml_nbytes(result));
    return std::nullopt;
}

std::optional<std::string> probe(const std::string& name) {
    ggml_backend_dev_t dev = nullptr;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        if (name == ggml_backend_dev_name(ggml_backend_dev_get(i))) {
            dev = ggml_backend_dev_get(i);
            break;
        }
    }
    if (!dev) {
        return "there is no device named '" + name + "'";
    }
    BackendPtr backend(ggml_backend_dev_init(dev, nullptr));
    if (!backend) {
        return std::string("it could not be initialised");
    }
    std::vector<float> got, expected;
    if (auto why = run_graph(backend.get(), got)) {
        return why;
    }
    BackendPtr cpu(ggml_backend_cpu_init());
    if (!cpu || run_graph(cpu.get(), expected)) {
        return std::string("the CPU reference could not be computed");
    }
    for (size_t i = 0; i < got.size(); ++i) {
        const float diff = std::fabs(got[i] - expected[i]);
        if (!std::isfinite(got[i]) || diff > 1e-2f + 1e-2f * std::fabs(expected[i])) {
            return "it computed wrong results (" + std::to_string(got[i]) + " where the CPU gives " +
                   std::to_string(expected[i]) + ")";
        }
    }
    return std::nullopt;
}

}  // namespace

void register_probe(py::module_& m) {
    m.def(
        "probe_device",
        [](const std::string& name) {
            py::gil_scoped_release nogil;
            return probe(name);
        },
        py::arg("name"),
        R"pbdoc(
Checks that a ggml device can run the engine: it initialises, supports the operations of an SD
UNet, and computes a small graph of them as the CPU does (well under a second).

Arguments:
    name: a ggml device name, as in ``system_info()["devices"]`` ("MTL0", "CUDA0", "CPU").

Returns:
    None when the device works, else why it cannot be used (for a warning).
)pbdoc");
}

}  // namespace sdcpp
