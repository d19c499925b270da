#include "stages.h"

#include <cstdlib>
#include <memory>
#include <vector>

#include "errors.h"
#include "stable-diffusion-stages.h"

namespace sdcpp {

namespace {

// A tensor the engine malloc'd, with its shape in ggml order (shape[0] varies fastest).
struct EngineTensor {
    std::unique_ptr<float, decltype(&std::free)> data{nullptr, std::free};
    int64_t shape[4] = {1, 1, 1, 1};
};

// A numpy view of the tensor's last `dims` ggml dimensions reversed (C order), owning its memory.
py::array_t<float> to_array(EngineTensor tensor, int dims) {
    std::vector<py::ssize_t> shape;
    for (int i = dims - 1; i >= 0; --i) {
        shape.push_back(static_cast<py::ssize_t>(tensor.shape[i]));
    }
    float* data = tensor.data.get();
    py::capsule owner(data, [](void* p) { std::free(p); });
    tensor.data.release();  // the capsule frees it from here on
    return py::array_t<float>(shape, data, owner);
}

void check_dims(const py::array& a, py::ssize_t dims, const char* name) {
    if (a.ndim() != dims) {
        throw py::value_error(std::string(name) + ": expected " + std::to_string(dims) + " dimensions, got " +
                              std::to_string(a.ndim()));
    }
}

int dim(const py::array& a, py::ssize_t i) {
    return static_cast<int>(a.shape(i));
}

void check_tokens(const IdArray& ids, const FloatArray& weights) {
    check_dims(ids, 1, "ids");
    if (weights.ndim() != 1 || weights.shape(0) != ids.shape(0)) {
        throw py::value_error("weights: expected one weight per token id");
    }
}

}  // namespace

std::pair<py::array_t<int32_t>, py::array_t<float>> tokenize(const StageRunner& run, const std::string& prompt) {
    std::vector<int32_t> ids;
    std::vector<float> weights;
    run("tokenize the prompt", [&](sd_ctx_t* ctx) {
        int n = sd_ctx_tokenize(ctx, prompt.c_str(), nullptr, nullptr, 0);
        if (n < 0) {
            return false;
        }
        ids.resize(n);
        weights.resize(n);
        return sd_ctx_tokenize(ctx, prompt.c_str(), ids.data(), weights.data(), n) == n;
    });
    auto n = static_cast<py::ssize_t>(ids.size());
    return {py::array_t<int32_t>(n, ids.data()), py::array_t<float>(n, weights.data())};
}

py::array_t<float> encode_tokens(const StageRunner& run, const IdArray& ids, const FloatArray& weights, int clip_skip) {
    check_tokens(ids, weights);
    EngineTensor out;
    run("encode the tokens", [&](sd_ctx_t* ctx) {
        out.data.reset(sd_ctx_encode_tokens(ctx, ids.data(), weights.data(), dim(ids, 0), clip_skip, out.shape));
        return out.data != nullptr;
    });
    return to_array(std::move(out), 2);
}

py::array_t<float> encode_vector(const StageRunner& run, const IdArray& ids, const FloatArray& weights, int clip_skip,
                                 int width, int height) {
    check_tokens(ids, weights);
    EngineTensor out;
    run("compute the vector conditioning", [&](sd_ctx_t* ctx) {
        out.data.reset(
            sd_ctx_encode_vector(ctx, ids.data(), weights.data(), dim(ids, 0), clip_skip, width, height, out.shape));
        return out.data != nullptr;
    });
    return to_array(std::move(out), 1);
}

py::array_t<float> diffusion_model(const StageRunner& run, const FloatArray& x, float timestep,
                                   const FloatArray& context) {
    check_dims(x, 3, "x");
    check_dims(context, 2, "context");
    EngineTensor out;
    run("evaluate the diffusion model", [&](sd_ctx_t* ctx) {
        out.data.reset(sd_ctx_diffusion_model(ctx, x.data(), dim(x, 2), dim(x, 1), dim(x, 0), timestep, context.data(),
                                              dim(context, 1), dim(context, 0), out.shape));
        return out.data != nullptr;
    });
    return to_array(std::move(out), 3);
}

py::array_t<float> decode_latent(const StageRunner& run, const FloatArray& latent) {
    check_dims(latent, 3, "latent");
    EngineTensor out;
    run("decode the latent", [&](sd_ctx_t* ctx) {
        out.data.reset(sd_ctx_decode_latent(ctx, latent.data(), dim(latent, 2), dim(latent, 1), dim(latent, 0),
                                            out.shape));
        return out.data != nullptr;
    });
    return to_array(std::move(out), 3);
}

py::array_t<float> initial_noise(const StageRunner& run, int64_t seed, int width, int height) {
    EngineTensor out;
    run("draw the noise", [&](sd_ctx_t* ctx) {
        out.data.reset(sd_ctx_initial_noise(ctx, seed, width, height, out.shape));
        return out.data != nullptr;
    });
    return to_array(std::move(out), 4);
}

py::array_t<float> sigmas(const StageRunner& run, sample_method_t sample_method, scheduler_t scheduler, int steps,
                          int width, int height) {
    std::vector<float> out(static_cast<size_t>(steps) + 1);
    run("compute the noise schedule", [&](sd_ctx_t* ctx) {
        int n = sd_ctx_sigmas(ctx, scheduler, sample_method, steps, width, height, out.data(), static_cast<int>(out.size()));
        out.resize(n < 0 ? 0 : n);
        return n >= 0;
    });
    return py::array_t<float>(static_cast<py::ssize_t>(out.size()), out.data());
}

}  // namespace sdcpp
