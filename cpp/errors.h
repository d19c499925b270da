// Engine failures as C++ exceptions; errors.cpp turns each into its class in sdcpp.errors.
#pragma once

#include <stdexcept>

namespace sdcpp {

struct ModelLoadError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct GenerationError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct DeviceError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// what() is "<op>|<device>", which the translator turns into sdcpp.UnsupportedOperation(op, device).
struct UnsupportedOperation : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Cancelled : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace sdcpp
