// Writing a model in another weight type: the engine's convert(), and ggml's table of types.
#include <pybind11/stl.h>

#include <regex>
#include <string>
#include <tuple>
#include <vector>

#include "callbacks.h"
#include "errors.h"
#include "ggml.h"
#include "module.h"
#include "stable-diffusion.h"

namespace sdcpp {

namespace {

void convert_model(const std::string& src, const std::string& vae, const std::string& dst, const std::string& type,
                   const std::string& rules, bool quantize_kernels, py::object progress, py::object logger) {
    sd_type_t wtype = str_to_sd_type(type.c_str());
    if (wtype == SD_TYPE_COUNT) {
        throw py::value_error("unknown weight type '" + type + "'");
    }
    // The engine compiles each rule's pattern as a std::regex inside its loading threads, where a bad
    // one would terminate the process: compile them here first.
    std::string::size_type begin = 0;
    while (begin < rules.size()) {
        auto end  = rules.find(',', begin);
        auto item = rules.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
        begin     = end == std::string::npos ? rules.size() : end + 1;
        try {
            std::regex pattern(item.substr(0, item.find('=')));
        } catch (const std::regex_error& e) {
            throw py::value_error("rule '" + item + "': not a regular expression (" + e.what() + ")");
        }
    }
    // The engine reports its progress through the log and progress callbacks of this thread's scope;
    // it has no way to stop a conversion, so a progress callback that raises is re-raised at the end.
    CallScope scope(std::move(progress), std::move(logger), nullptr);
    bool ok = false;
    std::string engine_exception;
    {
        py::gil_scoped_release nogil;
        try {
            ok = convert_ext(src.c_str(), vae.c_str(), dst.c_str(), wtype, rules.c_str(), false, quantize_kernels);
        } catch (const std::exception& e) {  // its readers throw on some malformed files
            engine_exception = e.what();
        }
    }
    scope.rethrow_callback_error();
    if (!ok) {
        std::string message = engine_exception.empty() ? "the engine could not convert the model"
                                                        : "the engine failed converting the model: " + engine_exception;
        std::string log = scope.problems();
        throw ModelLoadError(log.empty() ? message : message + "\nengine log:\n" + log);
    }
}

}  // namespace

void register_convert(py::module_& m) {
    m.def("convert", &convert_model, py::arg("src"), py::arg("vae"), py::arg("dst"), py::arg("weight_type"),
          py::arg("rules"), py::arg("quantize_kernels"), py::arg("progress"), py::arg("logger"),
          R"pbdoc(Write the model at src (with an optional separate vae) to dst: GGUF, or safetensors when
dst ends in .safetensors. weight_type is a ggml type name; rules are the engine's "regex=type,..."
per-tensor overrides. quantize_kernels: quantized types also quantize convolution kernels, stored
flattened (engine patch 0032). progress(tensors_done, tensors, seconds_per_tensor) is called on this thread.

Raises sdcpp.ModelLoadError when the engine fails, with its log.)pbdoc");
    m.def("ggml_types", [] {
        std::vector<std::tuple<int, std::string, int64_t, size_t>> out;
        for (int i = 0; i < GGML_TYPE_COUNT; ++i) {
            const auto* traits = ggml_get_type_traits(static_cast<ggml_type>(i));
            if (traits->type_size > 0 && traits->blck_size > 0) {  // removed slots have neither
                out.emplace_back(i, traits->type_name, traits->blck_size, traits->type_size);
            }
        }
        return out;
    }, "ggml's tensor types as (id, name, elements per block, bytes per block), as GGUF files number them.");
}

}  // namespace sdcpp
