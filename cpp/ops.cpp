// Single ggml ops run on a chosen device, through the same ggml build that generates images:
// `sdcpp.ops` and the self-test use them to show that a backend's kernels are present and right.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "errors.h"
#include "ggml_util.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "module.h"
#include "sentinel.h"

namespace sdcpp {

namespace {

using Floats = py::array_t<float, py::array::c_style | py::array::forcecast>;

// CPU threads the ops run on; 0 keeps the CPU backend's default (4), which the op tests' thread splits
// assume. Benchmarks set one per core, so that a single op is timed as a Generator runs it.
int cpu_op_threads = 0;
// The last op's own time on its device, without copying the inputs in and the result out: what the
// single-op benchmarks compare.
double last_op_seconds = 0.0;
// Untimed runs of the graph before the timed one. Each call makes its own backend, whose work buffer is
// new memory: a product whose A panels fill 52 MB of it spent 17 ms of 60 in page faults on 2 Zen 5
// threads, which a Generator pays once, not per node. For ops that do not write their inputs.
int op_warmups = 0;

// A count the CPU backend keeps of an engine patch's path (int64_t (void), found by name); none where
// the backend has no such function (a build without llamafile).
std::optional<int64_t> cpu_count(const char* name) {
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("CPU");
    using Count = int64_t (*)();
    auto count = reg ? reinterpret_cast<Count>(ggml_backend_reg_get_proc_address(reg, name)) : nullptr;
    return count ? std::optional<int64_t>(count()) : std::nullopt;
}

// Tensors one op's graph may hold: ggml_conv_2d of one image makes about ten per band of rows.
constexpr size_t kMaxTensors = 4096;
using Build  = std::function<ggml_tensor*(ggml_context*, const std::vector<ggml_tensor*>&)>;

// Builds the graph of `build` over `inputs` (numpy order; ggml's dimensions are reversed; each
// stored as `types[i]`, float32 where not given), checks that the device supports every node, runs
// it there and returns the result as float32. A write past the end of the result is an error.
py::array_t<float> run(const std::string& device, const std::vector<Floats>& inputs, const Build& build,
                       const std::vector<ggml_type>& types = {}) {
    ggml_backend_dev_t dev = ggml_backend_dev_by_name(device.c_str());
    if (!dev) {
        throw DeviceError("no ggml device named '" + device + "' in this build");
    }
    ggml_init_params params{ggml_tensor_overhead() * kMaxTensors + ggml_graph_overhead(), nullptr, true};
    ContextPtr ctx(ggml_init(params));

    std::vector<ggml_tensor*> tensors;
    for (const Floats& a : inputs) {
        if (a.ndim() < 1 || a.ndim() > GGML_MAX_DIMS) {
            throw py::value_error("inputs must have 1 to 4 dimensions");
        }
        int64_t ne[GGML_MAX_DIMS] = {1, 1, 1, 1};
        for (py::ssize_t i = 0; i < a.ndim(); ++i) {
            ne[i] = a.shape(a.ndim() - 1 - i);
        }
        const ggml_type type = tensors.size() < types.size() ? types[tensors.size()] : GGML_TYPE_F32;
        tensors.push_back(ggml_new_tensor(ctx.get(), type, static_cast<int>(a.ndim()), ne));
    }
    ggml_tensor* out = build(ctx.get(), tensors);
    Sentinels sentinels;
    sentinels.guard(ctx.get(), out);
    ggml_cgraph* graph = ggml_new_graph(ctx.get());
    ggml_build_forward_expand(graph, out);

    BackendPtr backend(ggml_backend_dev_init(dev, nullptr));
    if (!backend) {
        throw DeviceError("device '" + device + "' failed to initialise");
    }
    if (cpu_op_threads > 0) {
        using SetThreads = void (*)(ggml_backend_t, int);
        auto set_threads = reinterpret_cast<SetThreads>(
            ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(dev), "ggml_backend_set_n_threads"));
        if (set_threads) {
            set_threads(backend.get(), cpu_op_threads);
        }
    }
    for (int i = 0; i < ggml_graph_n_nodes(graph); ++i) {
        ggml_tensor* node = ggml_graph_node(graph, i);
        if (!ggml_backend_supports_op(backend.get(), node)) {
            throw UnsupportedOperation(std::string(ggml_op_desc(node)) + "|" + device);
        }
    }
    BufferPtr buffer(ggml_backend_alloc_ctx_tensors(ctx.get(), backend.get()));
    if (!buffer) {
        throw GenerationError("could not allocate the op's tensors on '" + device + "'");
    }
    for (size_t i = 0; i < inputs.size(); ++i) {
        set_floats(tensors[i], inputs[i].data());
    }
    sentinels.fill();
    ggml_status status;
    {
        py::gil_scoped_release nogil;
        status = GGML_STATUS_SUCCESS;
        for (int i = 0; i < op_warmups && status == GGML_STATUS_SUCCESS; ++i) {
            status = ggml_backend_graph_compute(backend.get(), graph);
        }
        const auto start = std::chrono::steady_clock::now();
        if (status == GGML_STATUS_SUCCESS) {
            status = ggml_backend_graph_compute(backend.get(), graph);
        }
        last_op_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (status != GGML_STATUS_SUCCESS) {
        throw GenerationError(std::string("the op failed on '") + device + "': " + ggml_status_to_string(status));
    }
    const std::string overwritten = sentinels.overwritten();
    if (!overwritten.empty()) {
        throw GenerationError("the op's " + overwritten + " wrote past the end of its output on '" + device + "'");
    }
    // ggml drops trailing size-1 dimensions; keep as many as the inputs had (a batch of one stays).
    int ndim = ggml_n_dims(out);
    for (const Floats& a : inputs) {
        ndim = std::max(ndim, static_cast<int>(a.ndim()));
    }
    std::vector<py::ssize_t> shape;
    for (int i = ndim - 1; i >= 0; --i) {
        shape.push_back(out->ne[i]);
    }
    py::array_t<float> result(shape);
    ggml_backend_tensor_get(out, result.mutable_data(), 0, ggml_nbytes(out));
    return result;
}

// The bytes ggml's graph allocator reserves on `device` for ggml_conv_2d of x (n, c, h, w), float32,
// by a float16 kernel (out, c, kh, kw): that convolution's working memory as the engine's runners
// reserve it, inputs included.
size_t conv_2d_work_bytes(const std::vector<int64_t>& x, const std::vector<int64_t>& w, int stride, int padding,
                          const std::string& device) {
    if (x.size() != 4 || w.size() != 4 || *std::min_element(x.begin(), x.end()) < 1 ||
        *std::min_element(w.begin(), w.end()) < 1) {
        throw py::value_error("x (n, c, h, w) and w (out, c, kh, kw) need four sizes of at least 1 each");
    }
    if (w[1] != x[1] || stride < 1 || padding < 0 || w[2] > x[2] + 2 * padding || w[3] > x[3] + 2 * padding) {
        throw py::value_error("w must have x's channels and fit x padded; stride at least 1, padding at least 0");
    }
    ggml_backend_dev_t dev = ggml_backend_dev_by_name(device.c_str());
    if (!dev) {
        throw DeviceError("no ggml device named '" + device + "' in this build");
    }
    ggml_init_params params{ggml_tensor_overhead() * kMaxTensors + ggml_graph_overhead(), nullptr, true};
    ContextPtr ctx(ggml_init(params));
    ggml_tensor* xt  = ggml_new_tensor_4d(ctx.get(), GGML_TYPE_F32, x[3], x[2], x[1], x[0]);
    ggml_tensor* wt  = ggml_new_tensor_4d(ctx.get(), GGML_TYPE_F16, w[3], w[2], w[1], w[0]);
    ggml_tensor* out = ggml_conv_2d(ctx.get(), wt, xt, stride, stride, padding, padding, 1, 1);
    ggml_cgraph* graph = ggml_new_graph(ctx.get());
    ggml_build_forward_expand(graph, out);
    AllocatorPtr allocator(ggml_gallocr_new(ggml_backend_dev_buffer_type(dev)));
    if (!ggml_gallocr_reserve(allocator.get(), graph)) {
        throw GenerationError("could not reserve the convolution's memory on '" + device + "'");
    }
    return ggml_gallocr_get_buffer_size(allocator.get(), 0);
}

}  // namespace

void register_ops(py::module_& m, py::module_& testing) {
    m.def(
        "op_arange",
        [](float start, float stop, float step, const std::string& device) {
            return run(device, {}, [=](ggml_context* c, const std::vector<ggml_tensor*>&) {
                if (step > 0) {
                    return ggml_arange(c, start, stop, step);
                }
                // ggml's ARANGE only counts up (it asserts stop > start): count 0..n-1, then scale.
                float n = std::ceil((stop - start) / step);
                return ggml_scale_bias(c, ggml_arange(c, 0.0f, n, 1.0f), step, start);
            });
        },
        py::arg("start"), py::arg("stop"), py::arg("step"), py::arg("device"),
        "Needs a non-empty range (sdcpp.ops.arange checks it; ggml aborts otherwise).");
    m.def(
        "op_timestep_embedding",
        [](const Floats& timesteps, int dim, int max_period, const std::string& device) {
            return run(device, {timesteps}, [=](ggml_context* c, const std::vector<ggml_tensor*>& in) {
                return ggml_timestep_embedding(c, in[0], dim, max_period);
            });
        },
        py::arg("timesteps"), py::arg("dim"), py::arg("max_period"), py::arg("device"));
    m.def(
        "op_mul_mat",
        [](const Floats& a, const Floats& b, bool a_f16, const std::string& device) {
            auto build = [](ggml_context* c, const std::vector<ggml_tensor*>& in) { return ggml_mul_mat(c, in[0], in[1]); };
            return run(device, {a, b}, build, {a_f16 ? GGML_TYPE_F16 : GGML_TYPE_F32, GGML_TYPE_F32});
        },
        py::arg("a"), py::arg("b"), py::arg("a_f16"), py::arg("device"),
        "b @ a.T for a (m, k) and b (n, k); a stored as float16 (the UNet's weights) when a_f16.");
    m.def(
        "op_linear",
        [](const std::vector<Floats>& in, const std::string& device) {
            auto build = [](ggml_context* c, const std::vector<ggml_tensor*>& t) {
                // the engine's ggml_ext_linear: the bias added in place, then the block's residual
                ggml_tensor* y = ggml_add_inplace(c, ggml_mul_mat(c, t[1], t[0]), t[2]);
                return t.size() > 3 ? ggml_add(c, y, t[3]) : y;
            };
            return run(device, in, build, {GGML_TYPE_F32, GGML_TYPE_F16});
        },
        py::arg("inputs"), py::arg("device"),
        "inputs: x (n, k), weight (m, k) stored as float16, bias (m), optionally residual (n, m); checked by "
        "sdcpp.ops.linear.");
    m.def(
        "op_layer_norm",
        [](const std::vector<Floats>& in, float eps, const std::string& device) {
            auto build = [eps](ggml_context* c, const std::vector<ggml_tensor*>& t) {
                // the engine's ggml_ext_layer_norm: scale and bias applied in place
                ggml_tensor* y = ggml_mul_inplace(c, ggml_norm(c, t[0], eps), t[1]);
                return t.size() > 2 ? ggml_add_inplace(c, y, t[2]) : y;
            };
            return run(device, in, build);
        },
        py::arg("inputs"), py::arg("eps"), py::arg("device"),
        "inputs: x (n, c), weight (c), optionally bias (c); checked by sdcpp.ops.layer_norm.");
    testing.def(
        "cuda_fusion_count",
        [](const std::string& kind) -> std::optional<int64_t> {
            ggml_backend_reg_t reg = ggml_backend_reg_by_name("CUDA");
            using Count = int64_t (*)(const char*);
            auto count = reg ? reinterpret_cast<Count>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_cuda_fusion_count"))
                             : nullptr;
            return count ? std::optional<int64_t>(count(kind.c_str())) : std::nullopt;
        },
        py::arg("kind"),
        "How often CUDA ran an engine patch's path: 'linear' (0063), 'layer_norm' (0064) or "
        "'flash_attn_pipelined' (0065); -1 for another kind, None without CUDA.");
    testing.def(
        "cpu_winograd_count",
        []() { return cpu_count("ggml_cpu_winograd_conv_2d_count"); },
        "How many CONV_2D nodes the CPU ran as Winograd's F(2x2, 3x3) (engine patch 0066); None where the "
        "CPU backend has no such count (a build without llamafile).");
    testing.def(
        "cpu_shared_panels_count",
        []() { return cpu_count("ggml_cpu_shared_a_count"); },
        "How many packed CPU products (MUL_MAT, CONV_2D) packed their A panels once for all threads in the "
        "node's work buffer (engine patch 0077); None where the CPU backend has no such count.");
    testing.def(
        "cpu_batched_products_count",
        []() { return cpu_count("ggml_cpu_batched_count"); },
        "How many batched packed CPU products (attention's, one per head) ran each batch's product on one "
        "thread (engine patch 0080); None where the CPU backend has no such count.");
    testing.def(
        "op_transpose",
        [](const Floats& x, bool f16, const std::string& device) {
            auto build = [f16](ggml_context* c, const std::vector<ggml_tensor*>& in) {
                ggml_tensor* t = ggml_cont(c, ggml_transpose(c, in[0]));
                return f16 ? ggml_cast(c, t, GGML_TYPE_F32) : t;
            };
            return run(device, {x}, build, {f16 ? GGML_TYPE_F16 : GGML_TYPE_F32});
        },
        py::arg("x"), py::arg("f16"), py::arg("device"),
        "x with its last two axes swapped, as one CONT of a transposed view (of x stored as float16 when f16).");
    testing.def(
        "op_geglu",
        [](const Floats& x, const std::string& device) {
            return run(device, {x}, [](ggml_context* c, const std::vector<ggml_tensor*>& in) {
                return ggml_geglu_swapped(c, in[0]);
            });
        },
        py::arg("x"), py::arg("device"),
        "x[..., :d] * gelu(x[..., d:]) for x (..., 2d), as the engine's GEGLU runs it (one GEGLU node, the gate "
        "in the second half: ggml_geglu_swapped).");
    testing.def(
        "cpu_typed_strided_copy_count",
        []() { return cpu_count("ggml_cpu_typed_strided_copy_count"); },
        "How many CPU copies from a source strided in its first dimension (a transpose) copied 2- or 4-byte "
        "elements as such (engine patch 0081); None where the CPU backend has no such count.");
    m.def(
        "op_conv_2d",
        [](const Floats& x, const Floats& w, int stride, int padding, bool w_f16, bool direct, const std::string& device) {
            auto build = [=](ggml_context* c, const std::vector<ggml_tensor*>& in) {
                return direct ? ggml_conv_2d_direct(c, in[1], in[0], stride, stride, padding, padding, 1, 1)
                              : ggml_conv_2d(c, in[1], in[0], stride, stride, padding, padding, 1, 1);
            };
            return run(device, {x, w}, build, {GGML_TYPE_F32, w_f16 ? GGML_TYPE_F16 : GGML_TYPE_F32});
        },
        py::arg("x"), py::arg("weight"), py::arg("stride"), py::arg("padding"), py::arg("w_f16"), py::arg("direct"),
        py::arg("device"),
        "x (n, c, h, w), weight (out, c, kh, kw); weight stored as float16 when w_f16; ggml's CONV_2D when "
        "direct, else IM2COL + MUL_MAT.");
    testing.def(
        "set_cpu_op_threads",
        [](int threads) { return std::exchange(cpu_op_threads, std::max(threads, 0)); },
        py::arg("threads"),
        "Threads of the CPU backend sdcpp.ops runs on (0: its default, 4); returns the previous setting.");
    testing.def(
        "last_op_seconds", []() { return last_op_seconds; },
        "Seconds the last sdcpp.ops call spent in its graph on the device, without copying in and out.");
    testing.def(
        "set_op_warmups",
        [](int runs) { return std::exchange(op_warmups, std::max(runs, 0)); },
        py::arg("runs"),
        "Untimed runs of each sdcpp.ops graph before the timed one, on the same backend, so that its work "
        "buffer is already touched as in a Generator (for ops that do not write their inputs); returns the "
        "previous setting.");
    testing.def(
        "op_scale",
        [](const Floats& x, float factor, const std::string& device) {
            return run(device, {x}, [=](ggml_context* c, const std::vector<ggml_tensor*>& in) {
                return ggml_scale(c, in[0], factor);
            });
        },
        py::arg("x"), py::arg("factor"), py::arg("device"), "x * factor as one SCALE node.");
    testing.def(
        "cpu_parallel_scale_count",
        []() { return cpu_count("ggml_cpu_parallel_scale_count"); },
        "How many SCALE nodes the CPU ran on more than one thread (engine patch 0079); None where the CPU "
        "backend has no such count.");
    testing.def("set_conv_2d_max_cols_bytes", &ggml_conv_2d_set_max_cols_bytes, py::arg("bytes"),
                "Bound on the im2col matrix ggml_conv_2d makes at once for one image (engine patch 0059); "
                "returns the previous bound.");
    testing.def("conv_2d_work_bytes", &conv_2d_work_bytes, py::arg("x"), py::arg("w"), py::arg("stride"),
                py::arg("padding"), py::arg("device"));
    m.def(
        "op_group_norm",
        [](const Floats& x, int groups, float eps, const std::string& device) {
            return run(device, {x}, [=](ggml_context* c, const std::vector<ggml_tensor*>& in) {
                return ggml_group_norm(c, in[0], groups, eps);
            });
        },
        py::arg("x"), py::arg("groups"), py::arg("eps"), py::arg("device"), "x (n, c, h, w).");
    m.def(
        "op_attention",
        [](const Floats& q, const Floats& k, const Floats& v, bool flash, const std::string& device) {
            if (flash) {
                // the engine's flash path (ggml_ext_attention_ext): K and V cast to float16, float32 precision
                auto build = [](ggml_context* c, const std::vector<ggml_tensor*>& in) {
                    float scale      = 1.0f / std::sqrt(static_cast<float>(in[0]->ne[0]));
                    ggml_tensor* kqv = ggml_flash_attn_ext(c, in[0], in[1], in[2], nullptr, scale, 0.0f, 0.0f);
                    ggml_flash_attn_ext_set_prec(kqv, GGML_PREC_F32);
                    return ggml_reshape_2d(c, kqv, in[2]->ne[0], in[0]->ne[1]);
                };
                return run(device, {q, k, v}, build, {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_F16});
            }
            return run(device, {q, k, v}, [](ggml_context* c, const std::vector<ggml_tensor*>& in) {
                float scale     = 1.0f / std::sqrt(static_cast<float>(in[0]->ne[0]));
                ggml_tensor* kq = ggml_soft_max_ext(c, ggml_mul_mat(c, in[1], in[0]), nullptr, scale, 0.0f);
                return ggml_mul_mat(c, ggml_cont(c, ggml_transpose(c, in[2])), kq);
            });
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("flash"), py::arg("device"),
        "softmax(q k^T / sqrt(d)) v for (n, d) inputs; ggml's FLASH_ATTN_EXT over float16 k and v when flash.");
}

}  // namespace sdcpp
