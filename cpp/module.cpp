#include "module.h"

PYBIND11_MODULE(_core, m) {
    sdcpp::check_cpu();
    m.doc() = "Private binding of stable-diffusion.cpp; use the `sdcpp` package instead.";
    m.attr("__version__") = SDCPP_VERSION;
    py::module_ testing = m.def_submodule(
        "_testing", "For sdcpp's own tests only: the engine's stages one by one, its name tables and detection.");
    sdcpp::register_errors(m);
    sdcpp::register_callbacks(m);
    sdcpp::register_names(m, testing);
    sdcpp::register_system(m, testing);
    sdcpp::register_images(m, testing);
    sdcpp::register_params(m, testing);
    sdcpp::register_context(m, testing);
    sdcpp::register_upscaler(m);
    sdcpp::register_ops(m, testing);
    sdcpp::register_probe(m);
    sdcpp::register_profile(m);
    sdcpp::register_convert(m);
    sdcpp::register_detect(testing);
}
