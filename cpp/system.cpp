// What this build is and what it can see: versions, compiled backends, devices, CPU features.
#include <pybind11/stl.h>
#include <pybind11/typing.h>

#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml.h"
#include "module.h"
#include "stable-diffusion.h"
#ifdef GGML_USE_METAL
#include "ggml-metal.h"
#endif

namespace sdcpp {

namespace {

const char* device_type_name(enum ggml_backend_dev_type type) {
    switch (type) {
        case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
        default: return "accel";
    }
}

// Whether a Metal device runs matrix products through Metal 4's tensor API (see sdcpp/_metal.py);
// None for other devices. Asking creates no device: the list below already did.
py::object uses_tensor_api(ggml_backend_dev_t dev) {
#ifdef GGML_USE_METAL
    if (ggml_backend_dev_backend_reg(dev) == ggml_backend_metal_reg()) {
        return py::bool_(ggml_backend_metal_device_has_tensor(dev));
    }
#endif
    (void)dev;
    return py::none();
}

py::list devices() {
    py::list out;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        ggml_backend_dev_props props{};
        ggml_backend_dev_get_props(dev, &props);
        py::dict d;
        d["name"]         = props.name;
        d["description"]  = props.description ? props.description : "";
        d["type"]         = device_type_name(props.type);
        d["backend"]      = ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev));
        d["memory_free"]  = props.memory_free;
        d["memory_total"] = props.memory_total;
        d["tensor_api"]   = uses_tensor_api(dev);
        out.append(d);
    }
    return out;
}

py::list backends() {
    py::list out;
    for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
        out.append(ggml_backend_reg_name(ggml_backend_reg_get(i)));
    }
    return out;
}

// The CPU backend reports the instruction sets it was built for and found (AVX2, NEON, ...).
py::dict cpu_features() {
    py::dict out;
    ggml_backend_reg_t cpu = ggml_backend_reg_by_name("CPU");
    if (!cpu) {
        return out;
    }
    auto get_features = reinterpret_cast<ggml_backend_get_features_t>(
        ggml_backend_reg_get_proc_address(cpu, "ggml_backend_get_features"));
    if (!get_features) {
        return out;
    }
    for (ggml_backend_feature* f = get_features(cpu); f && f->name; ++f) {
        out[f->name] = f->value;
    }
    return out;
}

}  // namespace

void register_system(py::module_& m, py::module_& testing) {
    m.def("system_info", []() -> py::typing::Dict<py::str, py::object> {
        py::dict engine;
        engine["version"]      = sd_version();
        engine["commit"]       = sd_commit();
        engine["source"]       = SDCPP_ENGINE_SOURCE;
        engine["ggml_version"] = ggml_version();
        engine["ggml_commit"]  = ggml_commit();
        py::dict info;
        info["version"]        = SDCPP_VERSION;
        info["engine"]         = engine;
        info["backends"]       = backends();
        info["devices"]        = devices();
        info["cpu_features"]   = cpu_features();
        info["physical_cores"] = sd_get_num_physical_cores();
        return info;
    }, "Versions, compiled backends, devices and CPU features of this build, as plain data.");
    testing.def(
        "count_cores_in",
        [](const std::string& cpu_dir, const std::vector<int32_t>& cpus) {
            return sd_count_cores_in(cpu_dir.c_str(), cpus.data(), static_cast<int32_t>(cpus.size()));
        },
        py::arg("cpu_dir"), py::arg("cpus"),
        "The cores of the CPUs listed, by their thread siblings under cpu_dir, laid out as "
        "/sys/devices/system/cpu is: what physical_cores counts (engine patch 0078).");
}

}  // namespace sdcpp
