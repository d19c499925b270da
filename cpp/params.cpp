// _core.GenerationParams and _core.HiresFix: the engine call's settings, one named attribute per field.
#include "params.h"

#include <pybind11/stl.h>

#include "module.h"

namespace sdcpp {

// Binds `Struct` with one read-write attribute per field of `LIST`, and `fields`: their names in order.
// Getters return copies: a view into the struct would dangle once an optional field is reset.
#define SDCPP_BIND_STRUCT(Struct, LIST, doc)                                                        \
    {                                                                                               \
        py::class_<Struct> cls(m, #Struct, doc);                                                    \
        cls.def(py::init<>());                                                                      \
        LIST(SDCPP_BIND_FIELD)                                                                      \
        cls.def_property_readonly_static("fields", [](const py::object&) {                          \
            py::list names;                                                                         \
            LIST(SDCPP_FIELD_NAME)                                                                  \
            return names;                                                                           \
        }, "The field names, in order.");                                                           \
    }
#define SDCPP_BIND_FIELD(T, name) cls.def_readwrite(#name, &decltype(cls)::type::name, py::return_value_policy::copy);
#define SDCPP_FIELD_NAME(T, name) names.append(#name);

void register_params(py::module_& m) {
    SDCPP_BIND_STRUCT(HiresFix, SDCPP_HIRES_FIX, "The hires fix's settings; filled by name from sdcpp.HiresFix.")
    SDCPP_BIND_STRUCT(GenerationParams, SDCPP_GENERATION_PARAMS,
                      "The settings of one generation; filled by name from sdcpp.GenerationParams.")
}

#undef SDCPP_BIND_FIELD
#undef SDCPP_FIELD_NAME
#undef SDCPP_BIND_STRUCT

}  // namespace sdcpp
