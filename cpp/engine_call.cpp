#include "engine_call.h"

#include "errors.h"

namespace sdcpp {

std::mutex& creation_mutex() {
    static std::mutex mutex;
    return mutex;
}

std::string with_engine_log(std::string message, const CallScope& scope) {
    std::string log = scope.problems();
    return log.empty() ? message : message + "\nengine log:\n" + log;
}

void throw_device_failure(const std::string& device, const CallScope& scope) {
    if (!device.empty() && scope.problems().find("device '" + device + "' failed to start") != std::string::npos) {
        throw DeviceError(with_engine_log("device '" + device +
                                              "' failed to start; check its driver and free memory "
                                              "(`sdcpp doctor`), or choose another device",
                                          scope));
    }
}

}  // namespace sdcpp
