// _core.GenerationParams: the engine call's settings, with one named attribute per field.
#include "params.h"

#include <pybind11/stl.h>

#include <iterator>

#include "module.h"

namespace sdcpp {

namespace {

// In sd_cache_mode_t's order, as the engine's sd-cli and sd-server spell them (--cache-mode).
const char* const cache_mode_names[] = {"disabled", "easycache", "ucache", "dbcache", "taylorseer", "cache-dit",
                                        "spectrum"};

// A group of settings bound with one attribute per field of its X-macro list, and `fields`.
template <typename T>
py::class_<T> bind_group(py::module_& m, const char* name, const char* doc, py::list field_names) {
    py::class_<T> cls(m, name, doc);
    cls.def(py::init<>());
    cls.def_property_readonly_static("fields", [field_names](const py::object&) { return field_names; },
                                     "The field names, in order.");
    return cls;
}

}  // namespace

sd_cache_mode_t cache_mode_from_name(const std::string& name) {
    for (size_t i = 0; i < std::size(cache_mode_names); ++i) {
        if (name == cache_mode_names[i]) {
            return static_cast<sd_cache_mode_t>(i);
        }
    }
    throw py::value_error("unknown cache mode '" + name + "'");
}

void register_params(py::module_& m, py::module_& testing) {
    m.def("cache_modes", [] { return std::vector<std::string>(std::begin(cache_mode_names), std::end(cache_mode_names)); },
          "Step-caching modes, in the engine's sd_cache_mode_t order.");
#define SDCPP_FIELD_NAME(type, name) names.append(#name);
#define SDCPP_BIND_GROUP_FIELD(type, name) group.def_readwrite(#name, &Group::name);
    {
        using Group = VaeTiling;
        py::list names;
        SDCPP_VAE_TILING(SDCPP_FIELD_NAME)
        auto group = bind_group<Group>(m, "VaeTiling", "The engine's VAE tiling settings; see sdcpp.VaeTiling.", names);
        SDCPP_VAE_TILING(SDCPP_BIND_GROUP_FIELD)
    }
    {
        using Group = SkipLayerGuidance;
        py::list names;
        SDCPP_SKIP_LAYER_GUIDANCE(SDCPP_FIELD_NAME)
        auto group = bind_group<Group>(m, "SkipLayerGuidance", "The engine's skip-layer guidance; see sdcpp.SkipLayerGuidance.",
                                       names);
        SDCPP_SKIP_LAYER_GUIDANCE(SDCPP_BIND_GROUP_FIELD)
    }
#undef SDCPP_BIND_GROUP_FIELD

    py::class_<GenerationParams> cls(m, "GenerationParams",
                                     "The settings of one generation; filled by name from sdcpp.GenerationParams.");
    cls.def(py::init<>());
#define SDCPP_BIND_FIELD(type, name) cls.def_readwrite(#name, &GenerationParams::name);
    SDCPP_GENERATION_PARAMS(SDCPP_BIND_FIELD)
#undef SDCPP_BIND_FIELD
    testing.def("generation_params_fields", [] {
        py::typing::List<py::str> names;
#define SDCPP_FIELD_NAME(type, name) names.append(#name);
        SDCPP_GENERATION_PARAMS(SDCPP_FIELD_NAME)
        return names;
    }, "The field names of GenerationParams, in order.");
}

}  // namespace sdcpp
