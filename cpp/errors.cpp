#include "errors.h"

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

}  // namespace

void register_errors(py::module_&) {
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
        }
    });
}

}  // namespace sdcpp
