// The engine's own model family detection on a set of files, reading their headers only: the reference
// that sdcpp.inspect's Python port of it is tested against (tests/test_inspect.py).
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "model.h"
#include "module.h"

extern const char* model_version_to_str[];

namespace sdcpp {

void register_detect(py::module_& testing) {
    testing.def("detect_family", [](const std::vector<std::pair<std::string, std::string>>& files) -> py::object {
        SDVersion version = VERSION_COUNT;
        {
            py::gil_scoped_release nogil;
            ModelLoader loader;
            bool ok = true;
            for (const auto& [path, prefix] : files) {
                ok = ok && loader.init_from_file(path, prefix);
            }
            if (ok) {
                loader.convert_tensors_name();  // as new_sd_ctx does: detect, convert names, detect again
                version = loader.get_sd_version();
            }
        }
        if (version == VERSION_COUNT) {
            return py::none();
        }
        return py::str(model_version_to_str[version]);
    }, py::arg("files"),
    "The family the engine detects in (path, name prefix) files loaded in order, or None; reads headers only.");
}

}  // namespace sdcpp
