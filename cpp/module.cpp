#include "module.h"

PYBIND11_MODULE(_core, m) {
    sdcpp::check_cpu();
    m.doc() = "Private binding of stable-diffusion.cpp; use the `sdcpp` package instead.";
    m.attr("__version__") = SDCPP_VERSION;
    sdcpp::register_errors(m);
    sdcpp::register_callbacks(m);
    sdcpp::register_names(m);
    sdcpp::register_system(m);
    sdcpp::register_images(m);
    sdcpp::register_params(m);
    sdcpp::register_context(m);
    sdcpp::register_upscaler(m);
    sdcpp::register_ops(m);
    sdcpp::register_probe(m);
    sdcpp::register_profile(m);
    sdcpp::register_convert(m);
    sdcpp::register_detect(m);
}
