// _core.GenerationParams and its groups (VaeTiling, SkipLayerGuidance, HiresFix), and _core.VideoParams: the engine call's settings, one named attribute per field.
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
#define SDCPP_BIND_GROUP(Struct, LIST, doc)                            \
    {                                                                  \
        using Group = Struct;                                          \
        py::list names;                                                \
        LIST(SDCPP_FIELD_NAME)                                         \
        auto group = bind_group<Group>(m, #Struct, doc, names);        \
        LIST(SDCPP_BIND_GROUP_FIELD)                                   \
    }
    SDCPP_BIND_GROUP(VaeTiling, SDCPP_VAE_TILING, "The engine's VAE tiling settings; see sdcpp.VaeTiling.")
    SDCPP_BIND_GROUP(SkipLayerGuidance, SDCPP_SKIP_LAYER_GUIDANCE,
                     "The engine's skip-layer guidance; see sdcpp.SkipLayerGuidance.")
    SDCPP_BIND_GROUP(HiresFix, SDCPP_HIRES_FIX, "The hires fix's settings; filled by name from sdcpp.HiresFix.")
    SDCPP_BIND_GROUP(VideoParams, SDCPP_VIDEO_PARAMS, "A video's own settings; filled by name from sdcpp.VideoParams.")
    SDCPP_BIND_GROUP(LoadOptions, SDCPP_LOAD_OPTIONS,
                     "How a Context loads its model (component paths, device, ...); filled by name by sdcpp.Generator.")
#undef SDCPP_BIND_GROUP
#undef SDCPP_BIND_GROUP_FIELD

    py::class_<GenerationParams> cls(m, "GenerationParams",
                                     "The settings of one generation; filled by name from sdcpp.GenerationParams.");
    cls.def(py::init<>());
    // Getters return copies: a view into an optional group would dangle once the field is reset.
#define SDCPP_BIND_FIELD(type, name) cls.def_readwrite(#name, &GenerationParams::name, py::return_value_policy::copy);
    SDCPP_GENERATION_PARAMS(SDCPP_BIND_FIELD)
#undef SDCPP_BIND_FIELD
    testing.def("generation_params_fields", [] {
        py::typing::List<py::str> names;
#define SDCPP_FIELD_NAME(type, name) names.append(#name);
        SDCPP_GENERATION_PARAMS(SDCPP_FIELD_NAME)
        return names;
    }, "The field names of GenerationParams, in order.");
}

#undef SDCPP_FIELD_NAME

}  // namespace sdcpp
