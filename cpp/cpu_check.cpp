// A portable x86-64 build (the wheels: GGML_NATIVE=OFF) runs ggml's CPU code compiled for a set of
// instruction sets (AVX2, FMA, F16C, ... : SDCPP_CPU_REQUIRES, from CMakeLists.txt). On a CPU
// without one of them the first computation dies of SIGILL; refuse the import with a message
// instead. A build for the building machine (GGML_NATIVE=ON) requires nothing here. Linux only:
// every Intel Mac that runs macOS 11 has AVX2 but the 2013 Mac Pro.
#include <sstream>
#include <string>
#include <vector>

#include "module.h"

namespace sdcpp {

namespace {

#if defined(__x86_64__) && defined(__linux__)
struct Feature {
    const char* name;
    bool (*present)();
};

#define SDCPP_FEATURE(name) {name, [] { return __builtin_cpu_supports(name) != 0; }}
const Feature features[] = {
    SDCPP_FEATURE("sse4.2"),     SDCPP_FEATURE("avx"),        SDCPP_FEATURE("avx2"),
    SDCPP_FEATURE("fma"),        SDCPP_FEATURE("f16c"),       SDCPP_FEATURE("bmi2"),
    SDCPP_FEATURE("avx512f"),    SDCPP_FEATURE("avx512vbmi"), SDCPP_FEATURE("avx512vnni"),
    SDCPP_FEATURE("avx512bf16"),
};
#undef SDCPP_FEATURE

std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream in(text);
    for (std::string item; std::getline(in, item, ',');) {
        if (!item.empty()) {
            out.push_back(item);
        }
    }
    return out;
}
#endif

}  // namespace

void check_cpu() {
#if defined(__x86_64__) && defined(__linux__)
    __builtin_cpu_init();
    const std::vector<std::string> required = split(SDCPP_CPU_REQUIRES);
    std::string all, missing;
    for (const std::string& name : required) {
        all += (all.empty() ? "" : ", ") + name;
        for (const Feature& f : features) {
            if (name == f.name && !f.present()) {
                missing += (missing.empty() ? "" : ", ") + name;
            }
        }
    }
    if (!missing.empty()) {
        throw py::import_error(
            "sdcpp: this build needs a CPU with " + all +
            " (it was built portable, GGML_NATIVE=OFF); this CPU lacks " + missing +
            ". Build sdcpp from its source for this CPU instead: in a checkout, python -m pip install . "
            "(a build from source tunes for the building CPU, GGML_NATIVE=ON)");
    }
#endif
}

}  // namespace sdcpp
