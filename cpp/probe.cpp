// Whether a ggml device can run the engine: it initialises, it supports the operations an SD UNet
// is made of, and it computes a small graph of them as the CPU does.
//
// ggml lists a Metal device whatever the GPU supports (and a nameless one where Metal is missing,
// as in a VM); the kernels that need SIMD-group reductions are only refused when a graph reaches
// them, and the engine then aborts. Running a small graph of the same operations first turns that
// into a reason that `device="auto"` can act on.
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"
#include "ggml_util.h"
#include "module.h"
#include "sentinel.h"

namespace sdcpp {

namespace {

const char* const kCheckedNames[] = {"the query projection", "the attention", "the output"};

// Deterministic inputs in [-1, 1).
void fill(ggml_tensor* t, unsigned seed) {
    std::vector<float> values(ggml_nelements(t));
    unsigned state = seed;
    for (auto& v : values) {
        state = state * 1664525u + 1013904223u;
        v     = static_cast<float>(state >> 8) / static_cast<float>(1u << 23) - 1.0f;
    }
    set_floats(t, values.data());
}

// One UNet level in miniature, at an 8x8 latent with SD's 320 channels: the time embedding, a
// ResNet block, a cross-attention block over 77 context tokens, a skip concatenation and an
// upsampling. The shapes are chosen by ggml-metal-ops.cpp (ggml_metal_op_mul_mat): a product
// takes the matrix-matrix kernel `kernel_mul_mm` (Metal 4's tensor API on M5, M6, A19, A20) when
// the shared dimension K >= 64 and the activation has more than 8 rows; 2-8 rows with K a multiple
// of 128 take `mul_mv_ext`, the rest `mul_mv`. So:
//   conv_in (K = 4*9 = 36), time projection (2 rows), conv_out (4 output channels): mul_mv;
//   the 3x3 convolution (K = 2880, 320 kernels, output columns 8*8 = 64) and the 1x1 one:
//     mul_mm with 64 output columns, 64 modulo 128, the reported failure of the tensor API;
//   q and the output projection (f16 weights x f32 activations, 320 output columns over 64
//     tokens, whole 64x32 tiles: the direct tile store), k and v (77 rows: the edge-tile store);
//   q.k per head (64 dims, 77 columns) and probs.v (K = 77, not a multiple of 32, and 64 output
//     columns per head), batched over 5 heads: mul_mm.
// Every explicit product has a sentinel behind it (sentinel.h). Returns the reason it could not
// run, or the values of the checked tensors in `out`.
std::optional<std::string> run_graph(ggml_backend_t backend, std::vector<std::vector<float>>& out) {
    ggml_init_params params{};
    params.mem_size   = ggml_tensor_overhead() * 160 + ggml_graph_overhead();
    params.no_alloc   = true;
    ContextPtr ctx(ggml_init(params));
    if (!ctx) {
        return "could not create a ggml context";
    }
    ggml_context* c = ctx.get();
    const int side = 8, channels = 320, heads = 5, head_dim = 64, context_dim = 768, context_len = 77;
    const int tokens = side * side;
    ggml_tensor* timesteps = ggml_new_tensor_1d(c, GGML_TYPE_F32, 2);
    ggml_tensor* image     = ggml_new_tensor_4d(c, GGML_TYPE_F32, side, side, 4, 1);
    ggml_tensor* context   = ggml_new_tensor_2d(c, GGML_TYPE_F32, context_dim, context_len);
    ggml_tensor* conv_in   = ggml_new_tensor_4d(c, GGML_TYPE_F16, 3, 3, 4, channels);
    ggml_tensor* time_proj = ggml_new_tensor_2d(c, GGML_TYPE_F16, channels, channels);
    ggml_tensor* conv_mid  = ggml_new_tensor_4d(c, GGML_TYPE_F16, 3, 3, channels, channels);
    ggml_tensor* wq        = ggml_new_tensor_2d(c, GGML_TYPE_F16, channels, channels);
    ggml_tensor* wk        = ggml_new_tensor_2d(c, GGML_TYPE_F16, context_dim, channels);
    ggml_tensor* wv        = ggml_new_tensor_2d(c, GGML_TYPE_F16, context_dim, channels);
    ggml_tensor* wo        = ggml_new_tensor_2d(c, GGML_TYPE_F16, channels, channels);
    ggml_tensor* skip_conv = ggml_new_tensor_4d(c, GGML_TYPE_F16, 1, 1, 2 * channels, 64);
    ggml_tensor* conv_out  = ggml_new_tensor_4d(c, GGML_TYPE_F16, 3, 3, 64, 4);
    ggml_tensor* leaves[]  = {timesteps, image, context, conv_in, time_proj, conv_mid, wq, wk, wv, wo, skip_conv, conv_out};

    Sentinels sentinels;
    auto mul_mat = [&](ggml_tensor* a, ggml_tensor* b) {
        ggml_tensor* r = ggml_mul_mat(c, a, b);
        sentinels.guard(c, r);
        return r;
    };
    // ResNet block: conv, group norm, SiLU, plus the projected time embedding.
    ggml_tensor* emb = mul_mat(time_proj, ggml_silu(c, ggml_timestep_embedding(c, timesteps, channels, 10000)));
    ggml_tensor* h   = ggml_silu(c, ggml_group_norm(c, ggml_conv_2d(c, conv_in, image, 1, 1, 1, 1, 1, 1), 32, 1e-6f));
    ggml_tensor* emb0 = ggml_view_1d(c, emb, channels, 0);
    h = ggml_add(c, ggml_conv_2d(c, conv_mid, h, 1, 1, 1, 1, 1, 1), ggml_reshape_4d(c, emb0, 1, 1, channels, 1));
    ggml_tensor* skip = h;
    // Cross-attention: layer norm, q from the image tokens, k and v from the context, 5 heads.
    ggml_tensor* x = ggml_reshape_2d(c, ggml_cont(c, ggml_permute(c, h, 1, 2, 0, 3)), channels, tokens);
    ggml_tensor* q = mul_mat(wq, ggml_norm(c, x, 1e-5f));                                       // [320, 64]
    ggml_tensor* k = mul_mat(wk, context);                                                     // [320, 77]
    ggml_tensor* v = mul_mat(wv, context);                                                     // [320, 77]
    ggml_tensor* qh = ggml_permute(c, ggml_reshape_3d(c, q, head_dim, heads, tokens), 0, 2, 1, 3);       // [64, 64, 5]
    ggml_tensor* kh = ggml_cont(c, ggml_permute(c, ggml_reshape_3d(c, k, head_dim, heads, context_len), 0, 2, 1, 3));
    ggml_tensor* vt = ggml_cont(c, ggml_permute(c, ggml_reshape_3d(c, v, head_dim, heads, context_len), 1, 2, 0, 3));
    ggml_tensor* kq = mul_mat(kh, ggml_cont(c, qh));                                           // [77, 64, 5]
    kq = ggml_soft_max_ext(c, kq, nullptr, 1.0f / 8.0f, 0.0f);
    ggml_tensor* kqv = mul_mat(vt, kq);                                                        // [64, 64, 5]
    ggml_tensor* attn = ggml_reshape_2d(c, ggml_cont(c, ggml_permute(c, kqv, 0, 2, 1, 3)), channels, tokens);
    x = ggml_add(c, x, mul_mat(wo, ggml_gelu(c, attn)));
    // Back to an image, the skip connection, a 2x upsampling and the output convolution.
    h = ggml_cont(c, ggml_permute(c, ggml_reshape_4d(c, x, channels, side, side, 1), 2, 0, 1, 3));
    h = ggml_conv_2d(c, skip_conv, ggml_concat(c, h, skip, 2), 1, 1, 0, 0, 1, 1);              // [8, 8, 64]
    h = ggml_upscale(c, h, 2, GGML_SCALE_MODE_NEAREST);
    ggml_tensor* result = ggml_conv_2d(c, conv_out, ggml_silu(c, ggml_group_norm(c, h, 32, 1e-6f)), 1, 1, 1, 1, 1, 1);
    ggml_tensor* checked[] = {q, kqv, result};  // named in kCheckedNames

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
    unsigned seed = 1;
    for (ggml_tensor* t : leaves) {
        fill(t, seed++);
    }
    sentinels.fill();
    const ggml_status status = ggml_backend_graph_compute(backend, graph);
    if (status != GGML_STATUS_SUCCESS) {
        return std::string("a computation on it failed (") + ggml_status_to_string(status) + ")";
    }
    const std::string overwritten = sentinels.overwritten();
    if (!overwritten.empty()) {
        return "its " + overwritten + " wrote past the end of its output";
    }
    out.clear();
    for (ggml_tensor* t : checked) {
        out.emplace_back(ggml_nelements(t));
        ggml_backend_tensor_get(t, out.back().data(), 0, ggml_nbytes(t));
    }
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
    std::vector<std::vector<float>> got, expected;
    if (auto why = run_graph(backend.get(), got)) {
        return why;
    }
    BackendPtr cpu(ggml_backend_cpu_init());
    if (!cpu || run_graph(cpu.get(), expected)) {
        return std::string("the CPU reference could not be computed");
    }
    // Relative to the largest value of each checked tensor, as `sdcpp doctor` compares: float16
    // weights and a different summation order differ by ~1e-3; a wrong kernel by O(1).
    for (size_t t = 0; t < got.size(); ++t) {
        float largest = 1e-30f, worst = 0.0f;
        for (size_t i = 0; i < got[t].size(); ++i) {
            largest = std::max(largest, std::fabs(expected[t][i]));
            worst   = std::isfinite(got[t][i]) ? std::max(worst, std::fabs(got[t][i] - expected[t][i])) : INFINITY;
        }
        if (!(worst <= 1e-2f * largest)) {
            return "it computed wrong results (" + std::string(kCheckedNames[t]) + " off by " + std::to_string(worst) +
                   " where the CPU's values reach " + std::to_string(largest) + ")";
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
