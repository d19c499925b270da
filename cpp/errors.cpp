#include "errors.h"

#include <cstdio>

#include "ggml.h"
#include "module.h"

namespace sdcpp {

namespace {

// The hierarchy lives in plain Python (sdcpp/errors.py) so that it is documented and importable
// without the compiled module; the translator looks the class up when it is first needed.
template <typename E>
void raise_as(const E& e, const char* python_name) {
    py::object cls = py::module_::import("sdcpp.errors").attr(python_name);
    PyErr_SetString(cls.ptr(), e.what());
}

// ggml aborts the process on a failed internal check (GGML_ASSERT). Checks in Python come first so
// that this is not reached; when it is, say plainly what happened before the process ends.
void report_engine_abort(const char* message) {
    std::fprintf(stderr,
                 "\nsdcpp: the engine stopped the process on an internal check it cannot recover from:\n%s\n"
                 "sdcpp: please report this with the arguments that led to it.\n",
                 message ? message : "(no message)");
    std::fflush(stderr);
}

}  // namespace

void register_errors(py::module_& m) {
    ggml_set_abort_callback(report_engine_abort);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) {
                std::rethrow_exception(p);
            }
        } catch (const ModelLoadError& e) {
            raise_as(e, "ModelLoadError");
        } catch (const GenerationError& e) {
            raise_as(e, "GenerationError");
        } catch (const DeviceError& e) {
            raise_as(e, "DeviceError");
        } catch (const UnsupportedOperation& e) {
            std::string what = e.what();
            auto bar         = what.find('|');
            py::object cls   = py::module_::import("sdcpp.errors").attr("UnsupportedOperation");
            PyErr_SetObject(cls.ptr(), cls(what.substr(0, bar), what.substr(bar + 1)).ptr());
        } catch (const Cancelled& e) {
            raise_as(e, "Cancelled");
        }
    });
}

}  // namespace sdcpp
