// _core.GenerationParams: the engine call's settings, with one named attribute per field.
#include "params.h"

#include <pybind11/stl.h>

#include "module.h"

namespace sdcpp {

void register_params(py::module_& m, py::module_& testing) {
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
#undef SDCPP_FIELD_NAME
        return names;
    }, "The field names of GenerationParams, in order.");
}

}  // namespace sdcpp
