// Declarations shared by the binding's source files: one register function per bound concept.
// Entry points only sdcpp's own tests use go to the private submodule `_core._testing` (`testing`
// below), never into `_core` itself (docs/development.md).
#pragma once

#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace sdcpp {

// Throws ImportError when the CPU lacks an instruction set a portable build was compiled for.
void check_cpu();

void register_errors(py::module_& m);
void register_callbacks(py::module_& m);
void register_names(py::module_& m, py::module_& testing);
void register_system(py::module_& m, py::module_& testing);
void register_images(py::module_& m, py::module_& testing);
void register_params(py::module_& m, py::module_& testing);
void register_context(py::module_& m, py::module_& testing);
void register_upscaler(py::module_& m);
void register_ops(py::module_& m, py::module_& testing);
void register_probe(py::module_& m);
void register_profile(py::module_& m);
void register_convert(py::module_& m);
void register_detect(py::module_& testing);

}  // namespace sdcpp
